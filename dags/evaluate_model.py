"""
### evaluate_model

The gate: scores the week's latest challenger and the production champion on the same
held-out rows of the week (`[gate] metric`, default ROC AUC). The challenger passes when it
beats the champion by more than `[gate] margin`, or when there is no champion yet. The decision
is recorded in `evaluations`; re-runs compare with the same champion, so they decide the same.
"""

from datetime import datetime

from airflow.sdk import Param, dag
from lifecycle.params import DEFAULT_ARGS, common_params, gate_margin_param
from lifecycle.stages import evaluate_stage


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=common_params(
        gate_margin=gate_margin_param(),
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
def evaluate_model():
    evaluate_stage()


evaluate_model()
