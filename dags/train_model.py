"""
### train_model

Trains a challenger on the window of validated weeks ending at the run's week
(`[training] window_weeks`, clipped at the last week in which drift was detected), on the
provider's compute with the *training* hardware profile. The job name is a hash of the data
versions, hyperparameters and code version, so a re-run reuses the finished job.

Lineage (data versions, code version, hardware profile, hyperparameters, metrics) goes to the
`training_runs` table, and to the registry when the model is registered.
"""

from airflow.sdk import dag
from wiring.params import stage_dag_args, window_weeks_param
from wiring.stages import train_stage


@dag(schedule=None, **stage_dag_args("stage", "model", window_weeks=window_weeks_param()), doc_md=__doc__)
def train_model():
    train_stage()


train_model()
