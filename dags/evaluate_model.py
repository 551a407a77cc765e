"""
### evaluate_model

The gate: scores the week's latest challenger and the production champion on the same
held-out rows of the week (`[gate] metric`; by default the task's first: ROC AUC, log loss or
RMSE). The challenger passes when it beats the champion by more than `[gate] margin` in the
metric's direction, or when there is no champion yet. The decision
is recorded in `evaluations`; re-runs compare with the same champion, so they decide the same.
"""

from airflow.sdk import dag
from wiring.params import gate_margin_param, job_name_param, stage_dag_args
from wiring.stages import evaluate_stage


@dag(
    schedule=None,
    **stage_dag_args("stage", "model", gate_margin=gate_margin_param(), job_name=job_name_param()),
    doc_md=__doc__,
)
def evaluate_model():
    evaluate_stage()


evaluate_model()
