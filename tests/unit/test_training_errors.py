"""Labels that cannot train a model of the spec's task stop the train stage with their reason.

Through the stage functions on the local provider, from a weekly CSV file: the failure is
deterministic (Airflow does not retry it) and says what is wrong with the labels, instead of a
crash deep inside scikit-learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_config

WEEK = "2026-W10"


def _run_until_training(tmp_path: Path, labels: list[str], task: str, extra: dict | None = None):
    from core.config import load_settings
    from lifecycle.context import build_context
    from lifecycle.ingest import ingest_week
    from lifecycle.train import train_challenger
    from lifecycle.validate import validate_week_data

    rng = np.random.default_rng(0)
    n = len(labels)
    frame = pd.DataFrame({"x": rng.normal(size=n).round(3), "z": rng.normal(size=n).round(3), "y": labels})
    frame.to_csv(tmp_path / f"data_{WEEK}.csv", index=False)
    spec = {
        "label": "y",
        "task": task,
        "features": {"x": {"kind": "numeric"}, "z": {"kind": "numeric"}},
        **(extra or {}),
    }
    config = write_config(
        tmp_path,
        dataset=spec,
        data={"source": str(tmp_path / "data_{week}.csv")},
        validation={"min_rows": 10},
        model={"params": {"max_iter": 5}},
    )
    ctx = build_context(week=WEEK, logical_date=None, actor="test", settings=load_settings(config))
    ingest_week(ctx)
    validate_week_data(ctx)
    return lambda: train_challenger(ctx)


def test_a_label_that_is_one_value_in_the_window_is_named(tmp_path: Path) -> None:
    from core.errors import DeterministicError

    train = _run_until_training(tmp_path, ["no"] * 200, "binary", {"positive_class": "yes"})
    with pytest.raises(DeterministicError, match="the label 'y' is 'no' in every labelled training row"):
        train()


def test_a_binary_label_with_three_values_is_named(tmp_path: Path) -> None:
    from core.errors import DeterministicError

    labels = ["a", "b", "c"] * 70
    train = _run_until_training(tmp_path, labels, "binary", {"positive_class": "a"})
    with pytest.raises(DeterministicError, match='has 3 values .* set task = "multiclass"'):
        train()
