"""
### monitor_drift

Compares the week with the weeks before it (the training window, starting at the last drift):

- **data drift**: PSI per feature (KS / chi-square alongside); the week drifted when more
  than `[drift] drifted_share_threshold` of the features drifted;
- **prediction drift**: PSI of the week's scores against the same model's scores on the
  reference weeks;
- **concept drift**: once labels are in, the gate metric on the week's held-out rows against
  the same metric of the model that scored them at validation.

Writes `drift_metrics`, `drift_summary` and an HTML report (`reports/drift/week=<week>/`).
On drift it triggers `retrain_pipeline` for the week once (run id `drift_retrain__<week>`),
without waiting for it.
"""

from airflow.sdk import dag
from wiring.params import drift_params, stage_dag_args
from wiring.stages import monitor_stage


@dag(schedule=None, **stage_dag_args("stage", "monitoring", **drift_params()), doc_md=__doc__)
def monitor_drift():
    monitor_stage()


monitor_drift()
