"""The real-scheduler harness itself: a component that dies fails the test, with its last log lines.

The harness (tests/airflow_services.py) used to restart a crashed scheduler silently; now a
crash is a failure of the run under test. A real ``airflow scheduler`` is started against a
PostgreSQL address where nothing listens, so it exits at start-up with its error in its log.
"""

from __future__ import annotations

import pytest
from airflow_services import Airflow, airflow_env
from helpers import free_port, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_crashed_scheduler_fails_the_test_with_its_last_log_lines(tmp_path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    api_port = free_port()
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/airflow"  # nothing listens there
    airflow = Airflow(home, airflow_env(home, api_port, write_config(tmp_path)), api_port, nowhere)
    try:
        airflow.start("scheduler", "--skip-serve-logs")
        pid = airflow.processes["scheduler"].pid
        with pytest.raises(pytest.fail.Exception) as failed:
            airflow.wait_for(lambda: False, 240, "the scheduler's crash", poll=1)
        assert airflow.processes["scheduler"].pid == pid  # the one started: never restarted
    finally:
        airflow.stop()
    message = str(failed.value)
    assert "airflow scheduler exited with" in message
    assert "the last lines of scheduler.log" in message
    assert "Connection refused" in message  # the scheduler's own error, from its log
    assert "did not happen" not in message  # it failed on the crash, not on the timeout
