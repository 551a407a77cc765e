"""Shared wiring of the DAGs: Params, default arguments and the stage task factories.

Each stage is defined once here and used both by its own DAG and by retrain_pipeline. Not a
DAG folder itself (see dags/.airflowignore); nothing heavy is imported at module level.
"""
