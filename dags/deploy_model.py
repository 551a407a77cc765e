"""
### deploy_model

Deploys the `production` version to the online endpoint with the *inference* hardware profile,
then smoke-tests it with a few real rows of the week. If the smoke test fails, the endpoint
goes back to the version it served before, and `production` is pointed back at it.

On the local provider the endpoint is a FastAPI server on 127.0.0.1 (`make serve`); it picks
up a new deployment on its next request, without a restart.
"""

from airflow.sdk import dag
from wiring.params import stage_dag_args
from wiring.stages import deploy_stage


@dag(schedule=None, **stage_dag_args("stage", "serving"), doc_md=__doc__)
def deploy_model():
    deploy_stage()


deploy_model()
