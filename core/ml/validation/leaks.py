"""Checks that no feature leaks the label: by its name, or by matching the label too well."""

from __future__ import annotations

import re

import pandas as pd

from core.ml.dataset import DatasetSpec, canonical_values
from core.ml.validation.outcome import BatchFailure
from core.ml.validation.reading import is_numeric

LEAK_THRESHOLD = 0.99
LEAK_MIN_LABELLED = 20
LEAK_MIN_CLASS = 5
LEAK_MAX_LEVELS = 20
LEAK_CHECK = "label_leak_check"
_LABEL_NAMES = {"label", "target"}


def label_leaks(frame: pd.DataFrame, spec: DatasetSpec) -> list[BatchFailure]:
    """Return a batch failure for each column that looks like (or is named like) the label.

    A feature leaks the label when its name contains the label's stem (``defaulted`` -> ``default``)
    or is ``label``/``target``, or, over the labelled rows, it equals the label (or its
    complement, binary) in more than 99% of them, predicts it from its value in more than 99% of
    them (a column with few distinct values), or correlates with it beyond 0.99 (binary and
    regression labels).
    """
    failures: list[BatchFailure] = []
    label_name = spec.label
    stem = label_name.removesuffix("ed").lower()
    # the features, and any column the spec does not know (already a batch failure: name why)
    not_read = {label_name, spec.id_column, spec.event_time_column, *spec.ignore}
    features = [column for column in frame.columns if column not in not_read]
    for column in features:
        simple = re.sub(r"[^a-z0-9]", "", str(column).lower())
        if (len(stem) >= 4 and stem in simple) or simple in _LABEL_NAMES:
            failures.append(
                {
                    "expectation": LEAK_CHECK,
                    "column": column,
                    "detail": f"the column is named like the label {label_name!r}",
                }
            )
    if label_name not in frame.columns:
        return failures
    label = _leak_label(frame[label_name], spec)
    labelled = label.notna()
    label = label[labelled]
    if spec.is_classification:
        counts = label.value_counts()
        if len(label) < LEAK_MIN_LABELLED or len(counts) < 2 or counts.min() < LEAK_MIN_CLASS:
            return failures
    elif len(label) < LEAK_MIN_LABELLED or label.nunique() < 2:
        return failures
    named = {failure["column"] for failure in failures}
    for column in features:
        if column in named:
            continue
        detail = _leak_detail(frame.loc[labelled, column], label, spec)
        if detail:
            failures.append({"expectation": LEAK_CHECK, "column": column, "detail": detail})
    return failures


def _leak_label(values: pd.Series, spec: DatasetSpec) -> pd.Series:
    """The label as the leak checks compare it: 0/1 (binary), class text, or a number."""
    if spec.task == "regression":
        return pd.to_numeric(values, errors="coerce").astype(float)
    text = canonical_values(values)
    if spec.task == "binary":
        return text.map(lambda v: None if v is None else float(v == spec.positive_class))
    return text


def _leak_detail(values: pd.Series, label: pd.Series, spec: DatasetSpec) -> str | None:
    name = spec.label
    if spec.task != "multiclass" and (is_numeric(values) or pd.api.types.is_bool_dtype(values.dtype)):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        if spec.task == "binary":
            same = float((numbers == label).mean())
            opposite = float((numbers == 1 - label).mean())
            if max(same, opposite) > LEAK_THRESHOLD:
                kind = "equals" if same >= opposite else "is the complement of"
                return f"it {kind} {name} in {max(same, opposite):.1%} of labelled rows"
        finite = numbers.notna() & numbers.abs().ne(float("inf"))
        if finite.sum() >= LEAK_MIN_LABELLED and numbers[finite].nunique() > 1:
            correlation = numbers[finite].corr(label[finite].astype(float))
            if abs(correlation) > LEAK_THRESHOLD:
                return f"its correlation with {name} is {correlation:.3f}"
    if spec.task == "regression":
        return None
    known = values.notna()
    levels = values[known].nunique()
    if 1 < levels <= LEAK_MAX_LEVELS and known.mean() > LEAK_THRESHOLD:
        keyed = pd.DataFrame({"value": values[known].astype(str), "label": label[known].astype(str)})
        majority = keyed.groupby("value")["label"].agg(lambda s: s.value_counts().iloc[0]).sum()
        accuracy = majority / len(keyed)
        if accuracy > LEAK_THRESHOLD:
            return f"its value gives {name} in {accuracy:.1%} of labelled rows"
    return None
