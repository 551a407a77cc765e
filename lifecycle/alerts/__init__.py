"""Serving alerts: a breach of the week's serving thresholds told to people, through Connections.

``message`` is what a breach says, ``channels`` checks the Connections named in astro.toml's
``[alerts]`` and sends through them, ``notifier`` is the Airflow notifier on ``serving_alert``.
"""
