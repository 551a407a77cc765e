"""
### rollback_model

Points `production` back at an earlier model version and redeploys the endpoint. Leave
*Version* empty to go back to the version production pointed at before its last move (see the
alias history in the registry); give a version number to choose one. The move is recorded in
the alias history as a manual rollback. Batch scoring uses the restored version from its next run.
"""

from airflow.sdk import dag
from wiring.params import stage_dag_args, version_param
from wiring.stages import deploy_stage, rollback_stage


@dag(schedule=None, **stage_dag_args("operations", "model", version=version_param()), doc_md=__doc__)
def rollback_model():
    rolled_back = rollback_stage()
    rolled_back >> deploy_stage(production_version=rolled_back["production_version"])


rollback_model()
