"""The dataset spec: the user's table, label and features, declared in configuration.

A spec says what a week's rows hold and how the loop treats them:

* the label column and the task (``binary``, ``multiclass`` or ``regression``); for binary, the
  positive class; for classification, optionally the known classes;
* an optional id column (without one, each row gets a stable ``row_key``) and an optional
  event-time column (without one, a row belongs to the week of the file or query it came from);
* the features: name, kind (``numeric``, ``categorical``, ``boolean``) and optionally the valid
  range, the allowed values and whether nulls are allowed; columns to ignore;
* an optional feature function (``module:function``, a DataFrame in and out) that runs the same
  way in training, batch scoring and the endpoint.

It is written in TOML (a ``[dataset]`` table of astro.toml, or a file that table names) and read
by :func:`parse_spec`, which names the key of anything that is wrong. The spec travels with the
code to a cloud container as JSON (:meth:`DatasetSpec.to_json`), and inside every trained model,
so a model is never scored under a spec that is incompatible with the one it was trained under
(:func:`incompatibilities`).

This module is part of the training and inference code bundle: it imports nothing from the
project and nothing heavy.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

TASKS = ("binary", "multiclass", "regression")
KINDS = ("numeric", "categorical", "boolean")
ROW_KEY = "row_key"
"""The key column a spec without an id column gets (derived from each row's content and position)."""

# Column names the loop writes itself next to the spec's columns.
RESERVED = ("week", "model_version", ROW_KEY)
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_WHOLE_FLOAT = re.compile(r"^-?\d+\.0+$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_FEATURE_KEYS = {"kind", "min", "max", "values", "nullable"}
_SPEC_KEYS = {
    "label",
    "task",
    "positive_class",
    "classes",
    "id_column",
    "event_time_column",
    "features",
    "ignore",
    "feature_function",
    "prediction_name",
    "name",
}
# The metrics of each task (the first is the default gate metric) and whether higher is better.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "log_loss"),
    "multiclass": ("log_loss", "macro_f1", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "average_precision": True,
    "log_loss": False,
    "macro_f1": True,
    "accuracy": True,
    "rmse": False,
    "mae": False,
    "r2": True,
}
TRUE_WORDS = ("true", "yes", "y", "t", "1")
FALSE_WORDS = ("false", "no", "n", "f", "0")


class DatasetSpecError(ValueError):
    """The dataset spec does not parse or contradicts itself; the message names the key."""


@dataclass(frozen=True)
class FeatureSpec:
    """One input column of the model.

    Attributes:
        name: the column's name in the data.
        kind: ``numeric``, ``categorical`` or ``boolean``.
        min: the lowest valid value of a numeric feature (None: no bound).
        max: the highest valid value of a numeric feature (None: no bound).
        values: the allowed values of a categorical feature (empty: any value).
        nullable: whether a row may leave it empty (a row with a null is quarantined otherwise).
    """

    name: str
    kind: str
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    nullable: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """What a week's rows hold and how the loop reads them. Build it with :func:`parse_spec`."""

    label: str
    task: str
    features: tuple[FeatureSpec, ...]
    positive_class: str | None = None
    classes: tuple[str, ...] = ()
    id_column: str | None = None
    event_time_column: str | None = None
    ignore: tuple[str, ...] = ()
    feature_function: str | None = None
    prediction_name: str = ""
    name: str = "dataset"
    _function_cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    # ------------------------------------------------------------------ columns
    @property
    def key_column(self) -> str:
        """The column that identifies a row: the id column, or the derived ``row_key``."""
        return self.id_column or ROW_KEY

    @property
    def key_table_column(self) -> str:
        """The key column's name in the warehouse's predictions table (lowercase)."""
        return self.key_column.lower()

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature columns, in the spec's order."""
        return tuple(f.name for f in self.features)

    def features_of_kind(self, *kinds: str) -> tuple[FeatureSpec, ...]:
        """The features of the given kinds, in the spec's order."""
        return tuple(f for f in self.features if f.kind in kinds)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """Every column a week's data holds: id, event time, features, ignored columns, label."""
        head = [c for c in (self.id_column, self.event_time_column) if c]
        return (*head, *self.feature_names, *self.ignore, self.label)

    @property
    def is_classification(self) -> bool:
        """Binary or multiclass."""
        return self.task != "regression"

    @property
    def prediction_prefix(self) -> str:
        """The prefix of the prediction columns (``prediction_name``, else the label)."""
        return (self.prediction_name or self.label).lower()

    def prediction_columns(self) -> dict[str, str]:
        """The prediction columns batch scoring writes, with their logical types.

        binary: the probability of the positive class and the predicted class; multiclass: the
        predicted class, its probability and every class's probability (JSON); regression: the
        predicted value.
        """
        p = self.prediction_prefix
        if self.task == "binary":
            return {f"{p}_probability": "float", f"{p}_class": "string"}
        if self.task == "multiclass":
            return {f"{p}_class": "string", f"{p}_probability": "float", f"{p}_probabilities": "string"}
        return {f"{p}_prediction": "float"}

    @property
    def score_column(self) -> str:
        """The one prediction column whose distribution the monitor compares week to week."""
        p = self.prediction_prefix
        return {"binary": f"{p}_probability", "multiclass": f"{p}_class"}.get(self.task, f"{p}_prediction")

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data (what :func:`parse_spec` reads back)."""
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        data["features"] = {
            f["name"]: {k: v for k, v in f.items() if k != "name" and v not in (None, ())}
            for f in data["features"]
        }
        for key in ("classes", "ignore"):
            data[key] = list(data[key])
        for values in data["features"].values():
            if "values" in values:
                values["values"] = list(values["values"])
        return {k: v for k, v in data.items() if v not in (None, "", [])}

    def to_json(self) -> str:
        """The spec as JSON, features in the spec's order: what travels in the code bundle."""
        return json.dumps(self.to_dict())

    def spec_hash(self) -> str:
        """sha256 of the whole spec: part of a model's lineage and code version."""
        return "sha256:" + hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ feature function
    def feature_callable(self) -> Callable[[Any], Any] | None:
        """Import the feature function (once); None when the spec has none.

        Raises:
            DatasetSpecError: the module cannot be imported or has no such function.
        """
        if not self.feature_function:
            return None
        cached = self._function_cache.get(self.feature_function)
        if cached is None:
            cached = import_function(self.feature_function, "feature_function")
            self._function_cache[self.feature_function] = cached
        return cached


def canonical_value(value: Any) -> str | None:
    """A label or category value as text: ``1``/``1.0``/``"1"`` -> ``"1"``, ``True`` -> ``"true"``."""
    if value is None:
        return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "true" if value else "false"
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return str(int(value))
    text = str(value).strip()
    if _WHOLE_FLOAT.fullmatch(text):  # "1.0": an integer label written by a float column (CSV)
        text = text.split(".")[0]
    return text or None


def canonical_values(values: Any) -> Any:
    """``canonical_value`` of every value of a pandas Series, as an object Series on its index.

    Computed once per distinct value (pd.factorize), not per row: labels and boolean columns
    have a handful of values over millions of rows.
    """
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values)
    mapped = np.array([canonical_value(u) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)  # code -1 (missing) -> None


def import_function(path: str, key: str) -> Callable[..., Any]:
    """Import ``module:function``.

    Raises:
        DatasetSpecError: the path is malformed, the module cannot be imported or lacks the name.
    """
    if not isinstance(path, str) or not _FUNCTION.fullmatch(path):
        raise DatasetSpecError(f"[dataset] {key} = {path!r} must look like 'package.module:function'")
    module_name, name = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DatasetSpecError(
            f"[dataset] {key} = {path!r}: cannot import {module_name!r} ({error})"
        ) from None
    function: object = getattr(module, name, None)
    if not callable(function):
        raise DatasetSpecError(f"[dataset] {key} = {path!r}: module {module_name!r} has no function {name!r}")
    return function


def parse_spec(raw: Mapping[str, Any], where: str = "[dataset]") -> DatasetSpec:
    """Build and check a spec from its TOML/JSON data.

    Args:
        raw: the ``[dataset]`` table (keys as in the module docstring; ``features`` maps each
            name to a table ``{kind, min, max, values, nullable}``).
        where: how to name the table in messages (e.g. the file it came from).

    Returns:
        The checked spec.

    Raises:
        DatasetSpecError: a key is unknown, missing or has a bad value, or the spec contradicts
            itself (the label listed as a feature, a regression label with a positive class...).
    """
    if not isinstance(raw, Mapping):
        raise DatasetSpecError(f"{where} must be a table")
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise DatasetSpecError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(_SPEC_KEYS)}")

    def text(key: str, required: bool = False) -> str | None:
        value = raw.get(key)
        if value is None or value == "":
            if required:
                raise DatasetSpecError(f"{where} {key} is required")
            return None
        if not isinstance(value, str):
            raise DatasetSpecError(f"{where} {key} = {value!r} must be a string")
        return value

    def column(key: str, required: bool = False) -> str | None:
        value = text(key, required)
        if value is not None and not _COLUMN.fullmatch(value):
            raise DatasetSpecError(
                f"{where} {key} = {value!r} must be a column name of letters, digits and underscores "
                "(at most 63), not starting with a digit"
            )
        return value

    label = column("label", required=True)
    assert label is not None
    task = text("task", required=True)
    if task not in TASKS:
        raise DatasetSpecError(f"{where} task = {task!r} must be one of {list(TASKS)}")
    id_column, time_column = column("id_column"), column("event_time_column")
    classes = _string_list(raw.get("classes", []), f"{where} classes")
    positive = raw.get("positive_class")
    if positive is not None and not isinstance(positive, str | int | bool):
        raise DatasetSpecError(f"{where} positive_class = {positive!r} must be a string")
    positive = canonical_value(positive) if positive is not None else None
    if task == "regression":
        if positive is not None:
            raise DatasetSpecError(
                f"{where} positive_class: a regression label has no positive class; remove it"
            )
        if classes:
            raise DatasetSpecError(f"{where} classes: a regression label has no classes; remove them")
    if task == "binary":
        if positive is None:
            raise DatasetSpecError(
                f'{where} positive_class is required for a binary label (e.g. "1", "yes" or "true")'
            )
        if classes and len(classes) != 2:
            raise DatasetSpecError(f"{where} classes = {classes}: a binary label has exactly two classes")
        if classes and positive not in classes:
            raise DatasetSpecError(f"{where} positive_class = {positive!r} is not one of classes {classes}")
    if task == "multiclass":
        if positive is not None:
            raise DatasetSpecError(f"{where} positive_class: only a binary label has one; remove it")
        if classes and len(classes) < 3:
            raise DatasetSpecError(
                f'{where} classes = {classes}: a multiclass label has at least three (two: task = "binary")'
            )
    if len(set(classes)) != len(classes):
        raise DatasetSpecError(f"{where} classes = {classes} lists a class twice")

    features = _features(raw.get("features"), where)
    ignore = tuple(_string_list(raw.get("ignore", []), f"{where} ignore"))
    function = text("feature_function")
    if function is not None and not _FUNCTION.fullmatch(function):
        raise DatasetSpecError(
            f"{where} feature_function = {function!r} must look like 'package.module:function'"
        )
    prediction_name = column("prediction_name") or ""
    name = text("name") or "dataset"

    names = [f.name for f in features]
    roles: dict[str, list[str | None]] = {
        "label": [label],
        "id_column": [id_column],
        "event_time_column": [time_column],
        "ignore": list(ignore),
    }
    seen: dict[str, str] = {n: "features" for n in names}
    for role, columns in roles.items():
        for col in columns:
            if col is None:
                continue
            if col in seen:
                raise DatasetSpecError(
                    f"{where}: column {col!r} is both in {seen[col]} and {role}; a column has one role"
                )
            seen[col] = role
    for col in seen:
        if col in RESERVED:
            raise DatasetSpecError(
                f"{where}: column name {col!r} is reserved (the loop writes {list(RESERVED)}); rename it"
            )
    return DatasetSpec(
        label=label,
        task=task,
        features=features,
        positive_class=positive,
        classes=tuple(classes),
        id_column=id_column,
        event_time_column=time_column,
        ignore=ignore,
        feature_function=function,
        prediction_name=prediction_name,
        name=name,
    )


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise DatasetSpecError(f"{where} = {value!r} must be a list")
    out = []
    for item in value:
        if isinstance(item, float) or not isinstance(item, str | int | bool):
            raise DatasetSpecError(f"{where}: {item!r} must be a string")
        text = canonical_value(item)
        if text is None:
            raise DatasetSpecError(f"{where}: {item!r} is empty")
        out.append(text)
    return out


def _features(raw: Any, where: str) -> tuple[FeatureSpec, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise DatasetSpecError(
            f'{where} features is required: a table of feature name -> {{ kind = "numeric" | '
            '"categorical" | "boolean", ... }}'
        )
    features = []
    for name, options in raw.items():
        key = f"{where} features.{name}"
        if not _COLUMN.fullmatch(str(name)):
            raise DatasetSpecError(
                f"{key}: the name must be letters, digits and underscores, not starting with a digit"
            )
        if isinstance(options, str):
            options = {"kind": options}
        if not isinstance(options, Mapping):
            raise DatasetSpecError(f'{key} must be a table like {{ kind = "numeric" }}')
        unknown = sorted(set(options) - _FEATURE_KEYS)
        if unknown:
            raise DatasetSpecError(f"{key}: unknown key(s) {unknown}; known keys: {sorted(_FEATURE_KEYS)}")
        kind = options.get("kind")
        if kind not in KINDS:
            raise DatasetSpecError(f"{key}.kind = {kind!r} must be one of {list(KINDS)}")
        low, high = options.get("min"), options.get("max")
        for bound, value in (("min", low), ("max", high)):
            if value is None:
                continue
            if kind != "numeric":
                raise DatasetSpecError(f"{key}.{bound}: only a numeric feature has a range")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise DatasetSpecError(f"{key}.{bound} = {value!r} must be a finite number")
        if low is not None and high is not None and low > high:
            raise DatasetSpecError(f"{key}: min {low} is above max {high}")
        values: tuple[str, ...] = ()
        if "values" in options:
            if kind != "categorical":
                raise DatasetSpecError(f"{key}.values: only a categorical feature has allowed values")
            values = tuple(_string_list(options["values"], f"{key}.values"))
            if not values:
                raise DatasetSpecError(f"{key}.values is empty: list the allowed values or leave the key out")
        nullable = options.get("nullable", False)
        if not isinstance(nullable, bool):
            raise DatasetSpecError(f"{key}.nullable = {nullable!r} must be true or false")
        features.append(
            FeatureSpec(
                name=str(name),
                kind=kind,
                min=None if low is None else float(low),
                max=None if high is None else float(high),
                values=values,
                nullable=nullable,
            )
        )
    return tuple(features)


def spec_from_json(text: str) -> DatasetSpec:
    """Read a spec back from :meth:`DatasetSpec.to_json`."""
    return parse_spec(json.loads(text), "dataset spec (JSON)")


def incompatibilities(trained: DatasetSpec, current: DatasetSpec) -> list[str]:
    """What keeps a model trained under ``trained`` from scoring under ``current`` (empty: nothing).

    Each entry names one difference, e.g. ``feature 'age' was numeric, is categorical``.
    """
    differences = []
    for key in ("label", "task", "positive_class", "feature_function"):
        before, after = getattr(trained, key), getattr(current, key)
        if before != after:
            differences.append(f"{key} was {before!r}, is {after!r}")
    old = {f.name: f.kind for f in trained.features}
    new = {f.name: f.kind for f in current.features}
    differences += [f"feature {n!r} was removed" for n in old if n not in new]
    differences += [f"feature {n!r} was added" for n in new if n not in old]
    differences += [f"feature {n!r} was {old[n]}, is {new[n]}" for n in old if n in new and old[n] != new[n]]
    if not differences and list(old) != list(new):
        differences.append("the features are in another order")
    return differences
