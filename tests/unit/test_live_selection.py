"""Live tests (real clouds, billed) are collected only when ``-m live_<cloud>`` names them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _collected(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", "tests/live", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip
    return result.stdout + result.stderr


@pytest.mark.parametrize("selection", [[], ["-m", "not e2e"], ["-m", "not live_aws"], ["-k", "training"]])
def test_a_live_test_is_not_collected_unless_asked_for(selection):
    output = _collected(*selection)
    assert "test_aws_live.py::" not in output, output
    assert "deselected" in output, output


def test_a_live_test_is_collected_when_its_marker_is_asked_for():
    output = _collected("-m", "live_aws")
    assert "test_aws_live.py::test_" in output, output


def test_a_configured_live_test_that_cannot_authenticate_fails(tmp_path):
    """A live config whose bucket cannot be reached is a failure, not a skip."""
    config = tmp_path / "astro.toml"
    config.write_text(
        """
[project]
provider = "aws"
[aws]
conn_id = "aws_live_nowhere"
bucket = "no-such-bucket-mlops"
region = "eu-west-1"
role_arn = "arn:aws:iam::123456789012:role/x"
"""
    )
    env = {
        "MLOPS_LIVE_AWS_CONFIG": str(config),
        # an endpoint nothing listens on: the first call fails at once, no real AWS is reached
        "AIRFLOW_CONN_AWS_LIVE_NOWHERE": '{"conn_type": "aws", "login": "x", "password": "y", '
        '"extra": {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"}}',
        "AWS_MAX_ATTEMPTS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-m", "live_aws", "-x",
         "tests/live/test_aws_live.py::test_a_small_real_training_registration_and_batch_transform"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot list 'no-such-bucket-mlops'" in output and "skipped" not in output.split("\n")[-2], output
