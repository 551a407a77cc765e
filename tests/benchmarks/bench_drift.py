"""3. Drift detection: core/ml/drift.py against Evidently's DataDriftPreset on the same frames.

The frames are sample weeks (12 numeric + 8 categorical features = 20): a reference week, a
week of the same distribution (clean) and a week with the generator's covariate drift. The
project decides per feature on PSI > 0.2 (reference-quantile bins for numerics, categories for
categoricals). The speed baseline is Evidently configured with the same method and threshold,
``DataDriftPreset(method="psi", threshold=0.2)`` (its fastest configuration); its default
(Wasserstein / Jensen-Shannon at 0.1, slower) is timed once as well. The decisions are compared
with the columns the generator actually shifted and with Evidently's default per-column tests
(Evidently's PSI bins numerics by equal width, which misses the shift of a long-tailed column).
Imports are done before timing; each time is the median of the repetitions on the drifted pair.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from benchmarks.common import Figure, median, ratio

SPEEDUP_TARGET = 5.0
PSI_THRESHOLD = 0.2


def columns() -> tuple[list[str], list[str]]:
    """The 20 features: the first 12 numeric ones and the 8 categorical ones of the schema."""
    from demo.spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES

    return list(NUMERIC_FEATURES[:12]), list(CATEGORICAL_FEATURES)


def frames(rows: int) -> dict[str, pd.DataFrame]:
    """Reference, clean current and drifted current frames of ``rows`` rows."""
    from demo.sample_data import generate_week

    numeric, categorical = columns()
    wanted = numeric + categorical
    return {
        "reference": generate_week("2030-W10", rows, seed=11)[wanted],
        "clean": generate_week("2030-W11", rows, seed=11)[wanted],
        "drifted": generate_week("2030-W11", rows, seed=11, covariate_drift_from_week="2030-W11")[wanted],
    }


def ours(reference: pd.DataFrame, current: pd.DataFrame) -> set[str]:
    """The project's drift check; the drifted columns."""
    from core.ml.drift import feature_drift

    numeric, categorical = columns()
    table = feature_drift(reference, current, numeric, categorical, PSI_THRESHOLD)
    return set(table.loc[table["drifted"], "feature"])


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, method: str | None = "psi") -> set[str]:
    """Evidently's DataDriftPreset (PSI at 0.2, or its defaults with ``method=None``); drifted columns."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric, categorical = columns()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(method=method, threshold=PSI_THRESHOLD) if method else DataDriftPreset()
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    drifted = set()
    for test in snapshot.dict()["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift") and test["status"] == "FAIL":
            drifted.add(params["column"])
    return drifted


def _time(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def run(rows: int = 1_000_000, repeat: int = 3) -> list[Figure]:
    """Time both checks on the drifted pair; compare their decisions on both pairs."""
    import evidently.presets  # noqa: F401 - imported before timing (it takes ~8 s)

    data = frames(rows)
    ref = data["reference"]
    # The generator draws the drifted week from the same random numbers as the clean one and
    # only transforms the drifted columns afterwards, so the truth is where the two differ.
    injected = sorted(c for c in ref.columns if not data["clean"][c].equals(data["drifted"][c]))
    decisions: dict[str, dict[str, list[str]]] = {}
    for name in ("clean", "drifted"):
        decisions[name] = {
            "ours": sorted(ours(ref, data[name])),
            "evidently_default": sorted(evidently_drift(ref, data[name], None)),
            "evidently_psi": sorted(evidently_drift(ref, data[name])),
        }
    ours_times, evidently_times = [], []
    for _ in range(repeat):
        ours_times.append(_time(ours, ref, data["drifted"])[0])
        evidently_times.append(_time(evidently_drift, ref, data["drifted"])[0])
    default_s = _time(evidently_drift, ref, data["drifted"], None)[0]
    ours_s, evidently_s = median(ours_times), median(evidently_times)
    # Evidently's own default methods agree with ours; its PSI bins numerics by equal width
    # (Sturges) over both frames, which can miss a shift of a long-tailed column.
    same = all(d["ours"] == d["evidently_default"] for d in decisions.values())
    expected = decisions["drifted"]["ours"] == injected and not decisions["clean"]["ours"]
    return [
        Figure(
            "drift",
            f"drift check, {rows:,} rows x 20 features",
            ours_s,
            "s",
            "Evidently DataDriftPreset(method='psi', threshold=0.2)",
            evidently_s,
            ratio(ours_s, evidently_s),
            f"ratio <= {1 / SPEEDUP_TARGET:g} (>= {SPEEDUP_TARGET:g}x faster)",
            evidently_s / ours_s >= SPEEDUP_TARGET,
            {
                "speedup": evidently_s / ours_s,
                "repeat": repeat,
                "ours_runs": ours_times,
                "evidently_runs": evidently_times,
                "evidently_default_seconds": default_s,
                "speedup_vs_evidently_default": default_s / ours_s,
            },
        ),
        Figure(
            "drift",
            "drifted columns = injected ones = Evidently's default decisions; none on clean data",
            float(same and expected),
            "bool",
            "Evidently DataDriftPreset() per-column tests",
            1.0,
            None,
            "same columns",
            same and expected,
            {"injected": injected, "decisions": decisions},
        ),
    ]
