"""
### rollback_model

Points `production` back at an earlier model version and redeploys the endpoint. Leave
*Version* empty to go back to the version production pointed at before its last move (see the
alias history in the registry); give a version number to choose one. The move is recorded in
the alias history as a manual rollback. Batch scoring uses the restored version from its next run.
"""

from datetime import datetime

from airflow.sdk import Param, dag
from lifecycle.params import DEFAULT_ARGS, common_params
from lifecycle.stages import deploy_stage, rollback_stage


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=common_params(
        version=Param(
            None,
            type=["null", "string"],
            pattern=r"^[0-9]{1,9}$",
            title="Version",
            description="Model version to restore. Empty: the previous production version.",
        ),
    ),
    tags=["mlops", "operations", "model"],
    doc_md=__doc__,
)
def rollback_model():
    rollback_stage() >> deploy_stage()


rollback_model()
