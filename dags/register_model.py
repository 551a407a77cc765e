"""
### register_model

Registers the week's evaluated challenger in the model registry (once: registration is keyed
by the training job) and moves the `production` alias to it **only if the gate passed**. Every
move of the alias is kept in its history (who, when, why) for rollback: see `rollback_model`.
"""

from airflow.sdk import dag
from wiring.params import job_name_param, stage_dag_args
from wiring.stages import register_stage


@dag(schedule=None, **stage_dag_args("stage", "model", job_name=job_name_param()), doc_md=__doc__)
def register_model():
    register_stage()


register_model()
