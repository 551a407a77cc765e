"""The spec drafter (core/ml/spec_draft.py): what it prints loads and covers the sample."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import PROJECT_ROOT, load_dataset_spec
from core.ml.dataset import DatasetSpec, canonical_value
from core.ml.spec_draft import main, widen

N = 80  # rows of the hand-made tables


def _sklearn_frame(loader) -> pd.DataFrame:
    frame = loader(as_frame=True).frame
    frame.columns = [re.sub(r"[^a-z0-9_]", "_", c.lower().replace(" ", "_")) for c in frame.columns]
    return frame


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    rng = np.random.default_rng(7)
    text = pd.DataFrame(
        {
            "city": rng.choice(["Paris", "Lyon", "Nice"], N),
            "plan": rng.choice(["basic", "pro", None], N),
            "has_partner": rng.choice(["yes", "no"], N),
            "is_active": rng.choice([True, False], N),
            "income": np.where(rng.random(N) < 0.1, np.nan, rng.uniform(1000, 9000, N).round(2)),
            "visits": rng.integers(0, 31, N),
            "notes": [f"called on day {i}" for i in range(N)],
            "Monthly Fee": rng.uniform(10, 50, N),
            "week": rng.integers(1, 52, N),
            "churned": rng.choice(["yes", "no"], N, p=[0.3, 0.7]),
        }
    )
    start = pd.Timestamp("2026-01-05")
    keyed = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(N)],
            "order_key": rng.permutation(N) + 1000,
            "signup_date": [start + pd.Timedelta(hours=7 * i) for i in range(N)],
            "last_seen": [start + pd.Timedelta(days=i % 9) for i in range(N)],
            "store_id": rng.integers(1, 6, N),
            "amount": rng.uniform(-20, 400, N).round(2),
            "tier": rng.choice(["gold", "silver", "bronze"], N),
        }
    )
    return {
        "breast_cancer": _sklearn_frame(load_breast_cancer),
        "wine": _sklearn_frame(load_wine),
        "diabetes": _sklearn_frame(load_diabetes),
        "text": text,
        "keyed": keyed,
    }


@pytest.fixture(scope="module")
def files(samples: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    for name, frame in samples.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
        frame.to_parquet(folder / f"{name}.parquet")
    return folder


def draft(capsys: pytest.CaptureFixture, *argv: str) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return out


def load(text: str, tmp_path: Path) -> DatasetSpec:
    path = tmp_path / "drafted.toml"
    path.write_text(text, encoding="utf-8")
    return load_dataset_spec(path)


def assert_every_line_commented(text: str) -> None:
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "[dataset")) or stripped in ("ignore = [", "]"):
            continue
        assert re.search(r"\s# \S", line), f"no comment on: {line}"


def assert_covers(spec: DatasetSpec, frame: pd.DataFrame) -> None:
    """Every feature admits each of the sample's values; nullable exactly when there are nulls."""
    for feature in spec.features:
        column = frame[feature.name]
        assert feature.nullable == bool(column.isna().any()), feature.name
        values = column.dropna()
        if feature.kind == "numeric":
            assert feature.min <= values.min() and feature.max >= values.max(), feature.name
            if values.min() >= 0:
                assert feature.min >= 0, feature.name
        elif feature.kind == "categorical":
            assert {canonical_value(v) for v in values} <= set(feature.values), feature.name
            assert list(feature.values) == sorted(feature.values)
        else:
            assert len({canonical_value(v).lower() for v in values}) <= 2


def kinds(spec: DatasetSpec) -> dict[str, str]:
    return {f.name: f.kind for f in spec.features}


# --------------------------------------------------------------------------------------- sklearn data
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_breast_cancer_is_binary_with_numeric_features(suffix, files, samples, capsys, tmp_path):
    text = draft(capsys, files / f"breast_cancer.{suffix}", "--label", "target")
    spec = load(text, tmp_path)
    frame = samples["breast_cancer"]
    assert (spec.name, spec.label, spec.task) == ("breast_cancer", "target", "binary")
    assert spec.positive_class == "1" and spec.classes == ("0", "1")
    assert "usually" not in text and '"1" means positive' in text
    assert kinds(spec) == {c: "numeric" for c in frame.columns if c != "target"}
    assert spec.id_column is None and spec.event_time_column is None and spec.ignore == ()
    assert_covers(spec, frame)
    assert_every_line_commented(text)


def test_csv_and_parquet_give_the_same_spec(files, capsys, tmp_path):
    from_csv = load(draft(capsys, files / "breast_cancer.csv", "--label", "target"), tmp_path)
    from_parquet = load(draft(capsys, files / "breast_cancer.parquet", "--label", "target"), tmp_path)
    assert from_csv == from_parquet


def test_wine_is_multiclass_through_the_module_command(files, samples):
    result = subprocess.run(
        [sys.executable, "-m", "core.ml.spec_draft", str(files / "wine.csv"), "--label", "target"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    spec = load(result.stdout, files)
    assert spec.task == "multiclass" and spec.classes == ("0", "1", "2") and spec.positive_class is None
    assert "pass --task regression if it is a count" in result.stdout
    assert len(spec.features) == 13 and set(kinds(spec).values()) == {"numeric"}
    assert_covers(spec, samples["wine"])
    assert_every_line_commented(result.stdout)


def test_an_integer_label_can_be_a_regression_target(files, capsys, tmp_path):
    spec = load(draft(capsys, files / "wine.parquet", "--label", "target", "--task", "regression"), tmp_path)
    assert spec.task == "regression" and spec.classes == () and spec.positive_class is None


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_diabetes_is_regression(suffix, files, samples, capsys, tmp_path):
    text = draft(capsys, files / f"diabetes.{suffix}", "--label", "target", "--name", "Diabetes progression")
    spec = load(text, tmp_path)
    assert spec.task == "regression" and spec.name == "Diabetes progression"
    assert spec.classes == () and spec.positive_class is None
    assert set(kinds(spec).values()) == {"numeric"}  # sex has two values, but not yes/no-like ones
    assert_covers(spec, samples["diabetes"])
    assert_every_line_commented(text)
    assert "given with --name" in text and "more than 20" in text


# --------------------------------------------------------------------------------------- hand-made tables
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_text_features_and_a_text_label(suffix, files, samples, capsys, tmp_path):
    text = draft(capsys, files / f"text.{suffix}", "--label", "churned")
    spec = load(text, tmp_path)
    frame = samples["text"]
    assert spec.task == "binary" and spec.positive_class == "yes" and spec.classes == ("no", "yes")
    assert spec.id_column is None and spec.event_time_column is None
    assert kinds(spec) == {
        "city": "categorical",
        "plan": "categorical",
        "has_partner": "boolean",
        "is_active": "boolean",
        "income": "numeric",
        "visits": "numeric",
    }
    features = {f.name: f for f in spec.features}
    assert features["city"].values == ("Lyon", "Nice", "Paris")
    assert features["plan"].nullable and features["income"].nullable
    assert features["visits"].min == 0 and features["visits"].max >= 30
    assert spec.ignore == ("notes",)
    assert "80 distinct text values (more than 50)" in text
    # names the spec cannot hold: left out, with a comment saying to rename them
    assert '# Left out: "Monthly Fee" is not a valid spec name' in text
    assert '# Left out: "week" is reserved' in text
    assert "# categorical: 3 distinct text values" in text
    assert_covers(spec, frame)
    assert_every_line_commented(text)


def test_an_id_and_an_event_time_are_found(files, samples, capsys, tmp_path):
    for suffix in ("csv", "parquet"):  # text dates in the CSV, datetime64 in the Parquet file
        text = draft(capsys, files / f"keyed.{suffix}", "--label", "tier")
        spec = load(text, tmp_path)
        assert spec.id_column == "customer_id" and spec.event_time_column == "signup_date"
        assert spec.task == "multiclass" and spec.classes == ("bronze", "gold", "silver")
        assert spec.ignore == ("order_key", "last_seen")
        assert kinds(spec) == {"store_id": "categorical", "amount": "numeric"}
        assert spec.features[0].values == ("1", "2", "3", "4", "5")
        assert spec.features[1].min < 0  # negative values: no clamp at 0
        assert "# guessed id: id-like name, unique text values in every row" in text
        assert "# guessed event time" in text and "the spec has no datetime kind" in text
        assert_covers(spec, samples["keyed"])
        assert_every_line_commented(text)


def test_given_columns_win_over_guesses(files, capsys, tmp_path):
    argv = ["--label", "tier", "--id-column", "store_id", "--event-time-column", "last_seen"]
    text = draft(capsys, files / "keyed.csv", *argv)
    spec = load(text, tmp_path)
    assert spec.id_column == "store_id" and spec.event_time_column == "last_seen"
    assert "given with --id-column; in the sample" in text and "values repeat" in text
    assert set(spec.ignore) == {"customer_id", "order_key", "signup_date"}


def test_the_minority_class_is_positive_without_a_usual_word(tmp_path, capsys):
    frame = pd.DataFrame({"radius": np.linspace(5, 30, 40), "diagnosis": ["M"] * 12 + ["B"] * 28})
    frame.loc[3, "diagnosis"] = None
    frame.to_csv(tmp_path / "tumours.csv", index=False)
    text = draft(capsys, tmp_path / "tumours.csv", "--label", "diagnosis")
    spec = load(text, tmp_path)
    assert spec.positive_class == "M" and spec.classes == ("B", "M")
    assert "the minority class (11 of 39 labelled rows" in text and "1 rows have no label" in text


def test_awkward_values_round_trip(tmp_path, capsys):
    awkward = ['say "hi"', "back\\slash", "# not a comment", "café ☕", "tab\there", "ok"]
    frame = pd.DataFrame(
        {
            "phrase": awkward * 5,
            "flag": ["Yes", "No"] * 15,
            "big": np.linspace(1e17, 3e17, 30),
            "tiny": np.linspace(1e-6, 9e-6, 30),
            "constant": [7] * 30,
            "empty": [None] * 30,
            "blank": [" ", None, "  "] * 10,
            "label": [0.5, 1.25, 2.0] * 10,
        }
    )
    frame.to_parquet(tmp_path / "awkward.parquet")
    text = draft(capsys, tmp_path / "awkward.parquet", "--label", "label")
    spec = load(text, tmp_path)
    features = {f.name: f for f in spec.features}
    assert set(features["phrase"].values) == set(awkward)
    assert features["flag"].kind == "boolean" and spec.task == "regression"
    assert features["constant"].min <= 7 <= features["constant"].max
    assert spec.ignore == ("empty", "blank")
    assert_covers(spec, frame.drop(columns=["empty", "blank"]))


@pytest.mark.parametrize(
    ("low", "high", "integer", "expected"),
    [
        (18, 97, True, (10, 105, False)),
        (0, 5, True, (0, 6, True)),
        (0.04996, 0.09744, False, (0.045, 0.103, False)),
        (-3.5, 2.25, False, (-4.1, 2.9, False)),
        (7, 7, True, (6, 8, False)),
        (0, 0, False, (0, 1, True)),
    ],
)
def test_widen_adds_headroom_and_rounds_outwards(low, high, integer, expected):
    assert widen(low, high, integer) == pytest.approx(expected)


# --------------------------------------------------------------------------------------- errors
def _fail(capsys: pytest.CaptureFixture, *argv: object) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("spec_draft: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        (
            "wine.csv",
            ["--label", "quality"],
            "label 'quality' is not a column of the sample; pass --label one of:",
        ),
        (
            "wine.csv",
            ["--label", "target", "--task", "binary"],
            "--task binary needs exactly two label values",
        ),
        ("breast_cancer.csv", ["--label", "target", "--task", "multiclass"], "pass --task binary"),
        (
            "text.csv",
            ["--label", "churned", "--task", "regression"],
            "--task regression needs a numeric label",
        ),
        ("text.csv", ["--label", "notes"], "80 distinct text values: too many to guess classes"),
        ("text.csv", ["--label", "Monthly Fee"], "is not a valid spec name"),
        ("keyed.csv", ["--label", "tier", "--id-column", "nope"], "--id-column 'nope' is not a column"),
        ("keyed.csv", ["--label", "tier", "--event-time-column", "tier"], "is the label"),
    ],
)
def test_errors_say_what_to_do(name, argv, message, files, capsys):
    err = _fail(capsys, files / name, *argv)
    assert message in err
    if "--label one of" in message:
        assert "alcohol, malic_acid" in err


def test_label_without_two_values(tmp_path, capsys):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "none": [None] * 3, "same": ["a"] * 3})
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert "is null in every row" in _fail(capsys, tmp_path / "bad.csv", "--label", "none")
    assert "has a single value ('a')" in _fail(capsys, tmp_path / "bad.csv", "--label", "same")


def test_unreadable_files(tmp_path, capsys):
    (tmp_path / "sample.xlsx").write_bytes(b"PK")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    assert "give a .csv or .parquet sample" in _fail(capsys, tmp_path / "sample.xlsx", "--label", "a")
    assert "no such file" in _fail(capsys, tmp_path / "missing.csv", "--label", "a")
    assert "is empty" in _fail(capsys, tmp_path / "empty.csv", "--label", "a")
    assert "has no rows" in _fail(capsys, tmp_path / "header.csv", "--label", "a")
    assert "cannot read it as Parquet" in _fail(capsys, tmp_path / "broken.parquet", "--label", "a")


def test_no_feature_left(tmp_path, capsys):
    pd.DataFrame({"order_id": range(30), "y": [0, 1] * 15}).to_csv(tmp_path / "ids.csv", index=False)
    assert "can be a feature" in _fail(capsys, tmp_path / "ids.csv", "--label", "y")


def test_a_bad_task_is_a_usage_error(files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(files / "wine.csv"), "--label", "target", "--task", "ranking"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
