"""The operator's view: the Models and Drift pages that the Airflow plugin mounts.

``data`` reads what the pages show from any provider (registry + warehouse + storage),
``charts`` draws inline SVG, ``pages`` renders HTML, ``app`` is the FastAPI app. Only ``app``
is imported when Airflow loads the plugin; everything heavy is imported by the handlers.
"""
