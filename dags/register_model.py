"""
### register_model

Registers the week's evaluated challenger in the model registry (once: registration is keyed
by the training job) and moves the `production` alias to it **only if the gate passed**. Every
move of the alias is kept in its history (who, when, why) for rollback: see `rollback_model`.
"""

from datetime import datetime

from airflow.sdk import Param, dag
from lifecycle.params import DEFAULT_ARGS, common_params
from lifecycle.stages import register_stage


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=common_params(
        job_name=Param(
            None,
            type=["null", "string"],
            pattern=r"^[a-z0-9-]{1,63}$",
            title="Training job",
            description="The challenger's training job name. Empty: the week's latest training run.",
        ),
    ),
    tags=["mlops", "stage", "model"],
    doc_md=__doc__,
)
def register_model():
    register_stage()


register_model()
