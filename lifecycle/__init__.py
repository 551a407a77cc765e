"""The lifecycle floor: the stages as plain functions over a provider, and the serving alerts.

Each stage (ingest, validate, train, evaluate, register, deploy, score, monitor, summary) takes
a :class:`lifecycle.context.StageContext` and returns a typed result; the DAGs (``dags/``) call
them. It imports the core and the providers, never the apps or the DAGs.
"""
