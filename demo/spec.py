"""The churn demo's dataset spec (``churn_dataset.toml``) and the column names it declares.

The sample generator writes exactly these columns; tests of the demo use the names. The loop
itself never imports this module: it reads whatever spec the settings name.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from core.ml.dataset import DatasetSpec, parse_spec

SPEC_FILE = Path(__file__).with_name("churn_dataset.toml")
DEMO_SPEC: DatasetSpec = parse_spec(tomllib.loads(SPEC_FILE.read_text())["dataset"], str(SPEC_FILE))

ID_COLUMN: str = DEMO_SPEC.id_column or ""
TIME_COLUMN: str = DEMO_SPEC.event_time_column or ""
LABEL_COLUMN: str = DEMO_SPEC.label
# numeric feature -> (lowest valid value, highest valid value)
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    f.name: (f.min if f.min is not None else float("-inf"), f.max if f.max is not None else float("inf"))
    for f in DEMO_SPEC.features_of_kind("numeric")
}
# categorical feature -> allowed values
CATEGORIES: dict[str, tuple[str, ...]] = {f.name: f.values for f in DEMO_SPEC.features_of_kind("categorical")}
NUMERIC_FEATURES: tuple[str, ...] = tuple(NUMERIC_RANGES)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(CATEGORIES)
RAW_FEATURES: tuple[str, ...] = DEMO_SPEC.feature_names
RAW_COLUMNS: tuple[str, ...] = DEMO_SPEC.raw_columns
PREDICTION_COLUMN: str = DEMO_SPEC.score_column
