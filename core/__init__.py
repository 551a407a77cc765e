"""The core floor: what runs anywhere, on an Airflow worker and inside a cloud's container.

Errors, weeks, settings (``config``), the catalogue of providers, task routing and the ML code
(``core.ml``: the dataset spec, features, the model, the training entry point, scoring,
validation, drift). It imports no other floor of the project.
"""
