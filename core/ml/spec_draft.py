"""Draft a dataset spec from a sample file: ``make dataset FILE=sample.csv LABEL=target``.

Run as::

    python -m core.ml.spec_draft FILE --label LABEL [--task binary|multiclass|regression]
        [--id-column C] [--event-time-column C] [--name NAME] > my_dataset.toml

``FILE`` is a CSV (``.csv``, optionally compressed: ``.csv.gz``...) or Parquet (``.parquet``,
``.pq``) sample of the table. The command prints a ``[dataset]`` table (see
:mod:`core.ml.dataset`) in which every line is a guess from the sample and carries a comment
saying what was guessed and why, to be checked before astro.toml points at the file:

* the task from the label's values: two distinct values are ``binary``; integers with 3 to 20
  values and text with 3 to 50 are ``multiclass``; other numbers are ``regression``;
* for binary, the positive class: ``1``, ``true``, ``yes``, ``y`` or ``positive`` when present,
  else the minority class;
* the id column (an id-like name such as ``order_id``/``orderId``/``order_key`` with a unique
  value in every row) and the event-time column (datetimes, or text dates in every row);
* each feature's kind: ``boolean`` (bool values, or two values like yes/no or 0/1), ``numeric``
  (numbers, with the sample's range widened by 10%), ``categorical`` (text with at most 50
  values, listed); text with more values, and columns that cannot be features, are ignored;
* ``nullable = true`` for the columns that have nulls in the sample.

A column whose name the spec cannot hold (see :data:`core.ml.dataset.RESERVED` and the column
name rule) is left out, with a comment saying to rename it. The drafted text is parsed with
:func:`core.ml.dataset.parse_spec` before it is printed, so what is printed always loads.

Errors (the label is not a column, has a single value, does not fit the asked task...) print one
line on stderr that says what to do, and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.ml.dataset import _COLUMN, RESERVED, TASKS, DatasetSpecError, canonical_value, parse_spec

MAX_CATEGORIES = 50
"""The most distinct text values a categorical feature (or a guessed multiclass label) has."""
MAX_INTEGER_CLASSES = 20
"""An integer label with more distinct values than this is guessed to be a regression target."""
HEADROOM = 0.1
"""How far a numeric feature's range is widened beyond the sample's, as a fraction of its span."""
MIN_UNIQUE_ROWS = 20
"""A text column unique in every row of a sample this long is an identifier or free text."""
POSITIVE_WORDS = ("1", "true", "yes", "y", "positive")
_BOOLEAN_PAIRS = ({"true", "yes", "1"}, {"false", "no", "0"})
_CSV_SUFFIXES = (".csv", ".tsv")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ID_WORDS = ("id", "key", "uuid", "guid")
# a date at the start of a text: 2024-01-31, 31/01/2024, 2024.1.31 (a time may follow)
_DATE_START = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"
_COMMENT_COLUMN = 44
"""The column the comments of the ``[dataset]`` lines start at (when the line is shorter)."""
_MAX_LISTED = 20


class DraftError(Exception):
    """The spec cannot be drafted; the message says what to do instead."""


@dataclass(frozen=True)
class Line:
    """One TOML line and the comment that explains it."""

    code: str
    comment: str


@dataclass(frozen=True)
class Guess:
    """What a column becomes: a feature (``code`` is its inline table) or a column to ignore."""

    role: str  # "feature" or "ignore"
    comment: str
    code: str = ""


# --------------------------------------------------------------------------------------- reading
def read_sample(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet sample, chosen by the file's suffix.

    Raises:
        DraftError: the file is missing, of another type, unreadable, or holds no rows.
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in _CSV_SUFFIXES + _PARQUET_SUFFIXES:
        raise DraftError(
            f"{path}: cannot tell the file type from its suffix {suffix or '(none)'!r}; "
            "give a .csv or .parquet sample"
        )
    if not path.is_file():
        raise DraftError(f"{path}: no such file; give the path of a CSV or Parquet sample")
    kind = "Parquet" if suffix in _PARQUET_SUFFIXES else "CSV"
    try:
        if kind == "Parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DraftError(f"{path} is empty; give a sample with a header line and rows") from None
    except (OSError, ValueError) as error:
        reason = _one_line(str(error)) or type(error).__name__
        raise DraftError(f"{path}: cannot read it as {kind} ({reason}); check the file") from None
    if len(frame) == 0:
        raise DraftError(f"{path} has no rows; give a sample with rows")
    return frame


def _one_line(text: str, limit: int = 200) -> str:
    """The first line of a message, shortened."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------------------- columns
def _listed(columns: Iterable[object]) -> str:
    """Column names for a message: the first few, and how many more."""
    names = list(columns)
    shown = ", ".join(
        n if isinstance(n, str) and _COLUMN.fullmatch(n) else _quoted(str(n)) for n in names[:_MAX_LISTED]
    )
    more = len(names) - _MAX_LISTED
    return shown + (f" ... ({more} more)" if more > 0 else "")


def _name_problem(name: object) -> str | None:
    """Why a column name cannot be in a spec (None: it can)."""
    if not isinstance(name, str) or not _COLUMN.fullmatch(name):
        return "is not a valid spec name (letters, digits, underscores, at most 63; no leading digit)"
    if name in RESERVED:
        return f"is reserved (the loop writes {', '.join(RESERVED)})"
    return None


def _require_column(frame: pd.DataFrame, name: str, option: str) -> None:
    """Check that an option names a column the spec can hold.

    Raises:
        DraftError: the column is missing or its name is invalid or reserved.
    """
    if name not in frame.columns:
        columns = _listed(frame.columns)
        raise DraftError(f"{option} {name!r} is not a column of the sample; pick one of: {columns}")
    problem = _name_problem(name)
    if problem:
        raise DraftError(f"{option} {name!r} {problem}: rename the column in the data")


def _is_id_like(name: str) -> bool:
    """Whether a name's last word is id/key/uuid/guid (``order_id``, ``orderId``, ``ID``)."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return bool(words) and words[-1].lower() in _ID_WORDS


def _is_text(series: pd.Series) -> bool:
    """Text (or object/category) values: not numbers, booleans or datetimes."""
    return not (
        pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_datetime64_any_dtype(series)
    )


def _is_unique_key(series: pd.Series) -> bool:
    """Integers or text with a value in every row and no value twice."""
    if not (_is_text(series) or pd.api.types.is_integer_dtype(series)) or pd.api.types.is_bool_dtype(series):
        return False
    return bool(series.notna().all() and series.is_unique)


def _parses_as_datetimes(series: pd.Series) -> bool:
    """Text whose every non-null value reads as a date (ISO 8601 or like 31/01/2024)."""
    values = pd.Series(series.dropna().unique())
    if values.empty or not values.map(lambda v: isinstance(v, str)).all():
        return False
    if not values.str.match(_DATE_START).all():
        return False
    for fmt in ("ISO8601", "mixed"):
        try:
            if pd.to_datetime(values, format=fmt, errors="coerce", utc=True).notna().all():
                return True
        except (ValueError, TypeError, OverflowError):
            continue
    return False


def _is_datetime(series: pd.Series) -> bool:
    """A datetime column, or text dates in every non-null row."""
    return pd.api.types.is_datetime64_any_dtype(series) or (_is_text(series) and _parses_as_datetimes(series))


def _dtype_name(series: pd.Series) -> str:
    """The dtype as a comment names it (``int64``, ``float64``, ``text``, ``category``...)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_string_dtype(series) or series.dtype == object:
        return "text"
    return str(series.dtype)


def _nulls(series: pd.Series) -> int:
    """How many nulls the column has."""
    return int(series.isna().sum())


def _with_nulls(comment: str, series: pd.Series, rows: int) -> str:
    """A comment, plus how many nulls there are when there are any."""
    nulls = _nulls(series)
    return comment if not nulls else f"{comment}; {nulls} of {rows} rows null -> nullable"


# --------------------------------------------------------------------------------------- values
def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, except DEL that TOML also escapes)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _quoted(text: str) -> str:
    """A value in double quotes for a comment (on one line whatever it holds)."""
    return json.dumps(text, ensure_ascii=False)


def _toml_strings(values: Sequence[str]) -> str:
    """A TOML array of strings on one line."""
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def _number(value: float) -> str:
    """A number as TOML (and comments) write it: integers without a fraction."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _sample_number(value: float) -> str:
    """A sample value for a comment: integers as they are, other numbers to 6 significant digits."""
    return _number(value) if float(value).is_integer() else f"{value:.6g}"


def widen(low: float, high: float, integer: bool = False) -> tuple[float, float, bool]:
    """The sample's range widened by :data:`HEADROOM` of its span, rounded outwards.

    The bounds are rounded to the power of ten just below the headroom (1 at least for integers),
    and a lower bound is kept at 0 when the sample has no negative value.

    Args:
        low: the sample's lowest value.
        high: the sample's highest value.
        integer: whether the values are whole numbers.

    Returns:
        The widened lower and upper bounds, and whether the lower one was clamped at 0.
    """
    span = high - low
    pad = span * HEADROOM if span > 0 else (abs(low) * HEADROOM or 1.0)
    step = 10.0 ** math.floor(math.log10(pad))
    if integer:
        step = max(step, 1.0)
    digits = max(0, -math.floor(math.log10(step)))
    new_low = round(math.floor((low - pad) / step) * step, digits)
    new_high = round(math.ceil((high + pad) / step) * step, digits)
    clamped = low >= 0 > new_low
    if clamped:
        new_low = 0.0
    return min(new_low, low), max(new_high, high), clamped


def _canonical_counts(series: pd.Series) -> dict[str, int]:
    """Each distinct value as canonical text (see ``canonical_value``) and how often it occurs."""
    counts: dict[str, int] = {}
    for value, count in series.value_counts(dropna=True).items():
        text = canonical_value(value)
        if text is not None:
            counts[text] = counts.get(text, 0) + int(count)
    return counts


def _sorted_values(values: Sequence[str]) -> list[str]:
    """Values in order: numerically when all are numbers, else as text."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _is_whole(values: pd.Series) -> bool:
    """Whether numbers (nulls dropped) are all whole."""
    if pd.api.types.is_integer_dtype(values):
        return True
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool((finite == finite.round()).all())


# --------------------------------------------------------------------------------------- features
def guess_column(series: pd.Series, rows: int) -> Guess:
    """Guess what a column (not the label, id or event time) is in the spec.

    Args:
        series: the column's values in the sample.
        rows: the sample's row count.

    Returns:
        A feature with its inline table, or a column to ignore; the comment says why.
    """
    values = series.dropna()
    if values.empty:
        return Guess("ignore", "every value is null in the sample: nothing to guess its kind from")
    try:
        distinct = int(values.nunique())
    except TypeError:
        return Guess("ignore", f"{_dtype_name(series)} values that are not plain numbers or text")
    # the values as canonical text, only when few (a numeric column may have millions)
    counts = _canonical_counts(values) if distinct <= MAX_CATEGORIES else {}
    boolean = _guess_boolean(series, counts, rows)
    if boolean:
        return boolean
    if _is_datetime(series):
        reason = "the spec has no datetime kind; derive features from it in a feature_function"
        return Guess("ignore", f"datetimes (not the event time): {reason}")
    if pd.api.types.is_numeric_dtype(series) and not _is_id_like(str(series.name)):
        return _guess_numeric(series, rows)
    return _guess_categorical(series, counts, rows)


def _guess_boolean(series: pd.Series, counts: dict[str, int], rows: int) -> Guess | None:
    """A boolean feature: bool dtype, or exactly two values like yes/no, true/false or 1/0."""
    nullable = ", nullable = true" if _nulls(series) else ""
    code = f'{{ kind = "boolean"{nullable} }}'
    if pd.api.types.is_bool_dtype(series):
        return Guess("feature", _with_nulls(f"boolean: {series.dtype} values", series, rows), code)
    lowered = {v.lower() for v in counts}
    if len(counts) == 2 and len(lowered) == 2 and all(lowered & words for words in _BOOLEAN_PAIRS):
        shown = "/".join(_sorted_values(list(counts)))
        return Guess("feature", _with_nulls(f"boolean: the only values are {shown}", series, rows), code)
    return None


def _guess_numeric(series: pd.Series, rows: int) -> Guess:
    """A numeric feature with the sample's range widened by the headroom."""
    values = series.dropna().astype(float)
    finite = values[np.isfinite(values)]
    if finite.empty:
        return Guess("ignore", f"{series.dtype} values that are all infinite")
    low, high = float(finite.min()), float(finite.max())
    new_low, new_high, clamped = widen(low, high, _is_whole(finite))
    nullable = ", nullable = true" if _nulls(series) else ""
    code = f'{{ kind = "numeric", min = {_number(new_low)}, max = {_number(new_high)}{nullable} }}'
    if high > low:
        seen = f"values {_sample_number(low)}..{_sample_number(high)} in the sample"
        comment = f"numeric: {series.dtype} {seen}; range with {HEADROOM:.0%} headroom"
    else:
        comment = f"numeric: {series.dtype}, one value ({_sample_number(low)}) in the sample; range around it"
    if clamped:
        comment += ", kept >= 0"
    infinite = len(values) - len(finite)
    if infinite:
        comment += f"; {infinite} infinite value{'s' if infinite > 1 else ''} (outside any range)"
    return Guess("feature", _with_nulls(comment, series, rows), code)


def _guess_categorical(series: pd.Series, counts: dict[str, int], rows: int) -> Guess:
    """A categorical feature listing its values, or an ignored column when it has too many."""
    kind, distinct = _dtype_name(series), len(counts) or int(series.nunique())
    if distinct > MAX_CATEGORIES:
        reason = "references to another table?" if _is_id_like(str(series.name)) else "free text or ids"
        return Guess("ignore", f"{distinct} distinct {kind} values (more than {MAX_CATEGORIES}): {reason}")
    if not counts:
        return Guess("ignore", f"{kind} values that are all blank: nothing to guess its kind from")
    non_null = int(series.notna().sum())
    if distinct == non_null and non_null >= MIN_UNIQUE_ROWS:
        return Guess("ignore", f"a different {kind} value in each of {non_null} rows: ids or free text")
    nullable = ", nullable = true" if _nulls(series) else ""
    listed = _toml_strings(_sorted_values(list(counts)))
    code = f'{{ kind = "categorical", values = {listed}{nullable} }}'
    comment = f"categorical: {distinct} distinct {kind} values"
    if pd.api.types.is_numeric_dtype(series):
        comment += " under an id-like name: codes, not measures"
    return Guess("feature", _with_nulls(comment, series, rows), code)


# --------------------------------------------------------------------------------------- label
def _label_kind(series: pd.Series) -> str:
    """``bool``, ``integer`` (whole numbers), ``float`` or ``text``."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "integer" if _is_whole(series.dropna().astype(float)) else "float"
    return "text"


def guess_task(series: pd.Series, counts: dict[str, int], task: str | None) -> tuple[str, str]:
    """The label's task (given or guessed) and a comment saying why.

    Args:
        series: the label's values in the sample.
        counts: its distinct values as canonical text, and how often each occurs.
        task: the task given with --task (None: guess it).

    Raises:
        DraftError: the label is all null or has one value, does not fit the given task, or
            the task cannot be guessed.
    """
    name, kind = series.name, _label_kind(series)
    distinct = len(counts)
    if distinct == 0:
        raise DraftError(f"label {name!r} is null in every row of the sample; pick another --label")
    if distinct == 1:
        raise DraftError(
            f"label {name!r} has a single value ({next(iter(counts))!r}) in the sample; "
            "a model needs at least two: give a sample with both outcomes"
        )
    if task is not None:
        _check_task(name, task, counts, kind)
        return task, "given with --task"
    return _guess_task(name, counts, kind)


def _check_task(name: object, task: str, counts: dict[str, int], kind: str) -> None:
    """Check that the label's values fit the task asked with --task."""
    distinct = len(counts)
    shown = ", ".join(_sorted_values(list(counts))[:10]) + (" ..." if distinct > 10 else "")
    if task == "regression" and kind in ("text", "bool"):
        raise DraftError(
            f"--task regression needs a numeric label, but {name!r} holds {kind} values ({shown}); "
            "pass --task binary or multiclass, or convert the label to numbers"
        )
    if task == "binary" and distinct != 2:
        raise DraftError(
            f"--task binary needs exactly two label values, but {name!r} has {distinct} ({shown}); "
            "pass --task multiclass" + (" or regression" if kind in ("integer", "float") else "")
        )
    if task == "multiclass" and distinct < 3:
        raise DraftError(
            f"--task multiclass needs at least three label values, but {name!r} has {distinct} ({shown}); "
            "pass --task binary"
        )


def _guess_task(name: object, counts: dict[str, int], kind: str) -> tuple[str, str]:
    """Guess the task from the label's distinct values and their type."""
    distinct = len(counts)
    if distinct == 2:
        return "binary", f"guessed: the label has 2 distinct {kind} values"
    if kind == "float":
        return "regression", (
            f"guessed: float label with {distinct} distinct values; pass --task multiclass for classes"
        )
    if kind == "integer":
        if distinct <= MAX_INTEGER_CLASSES:
            return "multiclass", (
                f"guessed: integer label with {distinct} distinct values; "
                "pass --task regression if it is a count"
            )
        return "regression", (
            f"guessed: integer label with {distinct} distinct values (more than {MAX_INTEGER_CLASSES}); "
            "pass --task multiclass if they are classes"
        )
    if distinct <= MAX_CATEGORIES:
        return "multiclass", f"guessed: {kind} label with {distinct} distinct values"
    raise DraftError(
        f"label {name!r} has {distinct} distinct {kind} values: too many to guess classes "
        f"(at most {MAX_CATEGORIES}); pass --task multiclass if they are classes, or pick another --label"
    )


def guess_positive_class(counts: dict[str, int]) -> tuple[str, str]:
    """A binary label's positive class: a usual positive word if present, else the minority class.

    Args:
        counts: the two classes (canonical text) and how many rows hold each.

    Returns:
        The class and a comment saying why.
    """
    by_word = {c.lower(): c for c in counts}
    for word in POSITIVE_WORDS:
        if word in by_word:
            positive = by_word[word]
            other = next(c for c in counts if c != positive)
            return positive, f"guessed: {_quoted(positive)} means positive (the other is {_quoted(other)})"
    minority = min(_sorted_values(list(counts)), key=lambda c: counts[c])
    other = next(c for c in counts if c != minority)
    share = f"{counts[minority]} of {sum(counts.values())} labelled rows"
    return minority, (
        f"guessed: the minority class ({share}; the other is {_quoted(other)}); check it is the outcome"
    )


def label_lines(series: pd.Series, task: str | None) -> list[Line]:
    """The ``label``, ``task``, ``positive_class`` and ``classes`` lines of the spec."""
    nulls = _nulls(series)
    label_comment = "given with --label" + (f"; {nulls} rows have no label in the sample" if nulls else "")
    counts = _canonical_counts(series)
    task, task_comment = guess_task(series, counts, task)
    lines = [
        Line(f"label = {_toml_string(str(series.name))}", label_comment),
        Line(f"task = {_toml_string(task)}", task_comment),
    ]
    if task == "regression":
        return lines
    if task == "binary":
        positive, comment = guess_positive_class(counts)
        lines.append(Line(f"positive_class = {_toml_string(positive)}", comment))
    classes = _sorted_values(list(counts))
    comment = f"the label's {len(classes)} distinct values in the sample"
    lines.append(Line(f"classes = {_toml_strings(classes)}", comment))
    return lines


# --------------------------------------------------------------------------------------- id and time
def guess_id_column(frame: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    """The first column with an id-like name and a unique value in every row (None: none)."""
    return next((c for c in candidates if _is_id_like(c) and _is_unique_key(frame[c])), None)


def guess_event_time_column(frame: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    """The first datetime column, or text column of dates in every non-null row (None: none)."""
    return next((c for c in candidates if frame[c].notna().any() and _is_datetime(frame[c])), None)


def _id_line(frame: pd.DataFrame, column: str, given: bool) -> Line:
    """The ``id_column`` line; a given column's comment warns about repeats and nulls."""
    series = frame[column]
    if not given:
        comment = f"guessed id: id-like name, unique {_dtype_name(series)} values in every row"
        return Line(f"id_column = {_toml_string(column)}", comment)
    problems = []
    if series.isna().any():
        problems.append(f"{_nulls(series)} rows have none")
    repeats = int(series.dropna().duplicated().sum())
    if repeats:
        problems.append(f"{repeats} values repeat")
    comment = "given with --id-column" + (f"; in the sample {' and '.join(problems)}" if problems else "")
    return Line(f"id_column = {_toml_string(column)}", comment)


def _time_line(frame: pd.DataFrame, column: str, given: bool) -> Line:
    """The ``event_time_column`` line; a given column's comment warns when it holds no dates."""
    series = frame[column]
    code = f"event_time_column = {_toml_string(column)}"
    if given:
        note = "" if _is_datetime(series) else "; its values do not all read as dates in the sample"
        return Line(code, "given with --event-time-column" + note)
    if pd.api.types.is_datetime64_any_dtype(series):
        return Line(code, f"guessed event time: {series.dtype} values")
    return Line(code, "guessed event time: text that reads as a date in every non-null row")


# --------------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class Options:
    """What the command line says besides the file."""

    label: str
    task: str | None = None
    id_column: str | None = None
    event_time_column: str | None = None
    name: str | None = None


def draft_spec(frame: pd.DataFrame, options: Options, source: str = "the sample") -> str:
    """Draft a spec's TOML from a sample frame.

    Args:
        frame: the sample.
        options: the label, and the task, id/event-time columns and name when given.
        source: how the header comment names the sample (e.g. its file name).

    Returns:
        The ``[dataset]`` table as TOML, every guessed line with a comment.

    Raises:
        DraftError: the options do not fit the sample, or no column can be a feature.
    """
    _check_options(frame, options)
    head = [_name_line(options, source), *label_lines(frame[options.label], options.task)]
    notes = [
        f"Left out: {_quoted(str(c))} {problem}: rename the column to use it"
        for c in frame.columns
        if c != options.label and (problem := _name_problem(c))
    ]
    usable = [c for c in frame.columns if c != options.label and not _name_problem(c)]
    id_column = options.id_column or guess_id_column(frame, usable)
    if id_column:
        head.append(_id_line(frame, id_column, given=bool(options.id_column)))
    rest = [c for c in usable if c != id_column]
    time_column = options.event_time_column or guess_event_time_column(frame, rest)
    if time_column:
        head.append(_time_line(frame, time_column, given=bool(options.event_time_column)))
    features, ignored = _feature_lines(frame, [c for c in rest if c != time_column], id_column)
    if not features:
        raise DraftError(
            f"no column of {source} can be a feature (columns: {_listed(frame.columns)}); "
            "give a sample with feature columns"
        )
    text = _render(source, frame, head, ignored, notes, features)
    _check_round_trip(text)
    return text


def _feature_lines(
    frame: pd.DataFrame, columns: Sequence[str], id_column: str | None
) -> tuple[list[Line], list[Line]]:
    """The ``[dataset.features]`` lines, and the items of the ``ignore`` list."""
    features, ignored = [], []
    for column in columns:
        guess = _guess_other(frame, column, id_column, len(frame))
        if guess.role == "feature":
            features.append(Line(f"{column} = {guess.code}", guess.comment))
        else:
            ignored.append(Line(_toml_string(column) + ",", guess.comment))
    return features, ignored


def _guess_other(frame: pd.DataFrame, column: str, id_column: str | None, rows: int) -> Guess:
    """A feature or an ignored column; a second unique id-like column is ignored."""
    series = frame[column]
    if _is_id_like(column) and _is_unique_key(series):
        return Guess(
            "ignore",
            f"id-like name, unique in every row like the id {_quoted(str(id_column))}: not a feature",
        )
    return guess_column(series, rows)


def _check_options(frame: pd.DataFrame, options: Options) -> None:
    """Check the label and the given columns against the sample."""
    if options.label not in frame.columns:
        columns = _listed(frame.columns)
        raise DraftError(
            f"label {options.label!r} is not a column of the sample; pass --label one of: {columns}"
        )
    _require_column(frame, options.label, "--label")
    if options.task is not None and options.task not in TASKS:
        raise DraftError(f"--task {options.task!r} must be one of {', '.join(TASKS)}")
    given = {"--id-column": options.id_column, "--event-time-column": options.event_time_column}
    for option, column in given.items():
        if column is None:
            continue
        _require_column(frame, column, option)
        if column == options.label:
            raise DraftError(f"{option} {column!r} is the label; a column has one role: pick another column")
    if options.id_column and options.id_column == options.event_time_column:
        raise DraftError(
            f"--id-column and --event-time-column are both {options.id_column!r}; a column has one role"
        )


def _name_line(options: Options, source: str) -> Line:
    """The ``name`` line: given, or from the file name."""
    if options.name:
        return Line(f"name = {_toml_string(options.name)}", "given with --name")
    stem = Path(source).name.split(".")[0]
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_") or "dataset"
    return Line(f"name = {_toml_string(name)}", "from the file name; names the dataset in reports")


def _aligned(lines: Sequence[Line], indent: str = "", width: int = _COMMENT_COLUMN) -> list[str]:
    """Lines with their comments, aligned when the code is shorter than ``width``."""
    column = min(max((len(indent + line.code) for line in lines), default=0) + 2, width)
    return [f"{(indent + line.code).ljust(column - 2)}  # {line.comment}" for line in lines]


def _render(
    source: str,
    frame: pd.DataFrame,
    head: Sequence[Line],
    ignored: Sequence[Line],
    notes: Sequence[str],
    features: Sequence[Line],
) -> str:
    """The spec's text: header comments, ``[dataset]`` and ``[dataset.features]``."""
    out = [
        f"# Dataset spec drafted by `make dataset` from {Path(source).name} "
        f"({len(frame)} rows, {len(frame.columns)} columns).",
        "# Each line is a guess from the sample and its comment says why: check them, then point",
        '# astro.toml at this file: [dataset] spec = "path/to/this.toml".',
        "",
        "[dataset]",
        *_aligned(head),
    ]
    if ignored:
        out += ["ignore = [", *_aligned(ignored, indent="    "), "]"]
    out += [f"# {note}" for note in notes]
    out += ["", "[dataset.features]", *_aligned(features, width=80)]
    return "\n".join(out) + "\n"


def _check_round_trip(text: str) -> None:
    """Parse the drafted text as the loop will; a failure here is a bug of this module."""
    try:
        parse_spec(tomllib.loads(text)["dataset"])
    except (tomllib.TOMLDecodeError, DatasetSpecError) as error:
        reason = _one_line(str(error))
        raise DraftError(f"the drafted spec does not load ({reason}); please report this bug") from None


# --------------------------------------------------------------------------------------- command
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m core.ml.spec_draft",
        description="Draft a dataset spec (TOML, on stdout) from a CSV or Parquet sample.",
    )
    parser.add_argument("file", type=Path, help="the sample: .csv (optionally compressed) or .parquet")
    parser.add_argument("--label", required=True, help="the label column")
    parser.add_argument("--task", choices=TASKS, help="the task (default: guessed from the label)")
    parser.add_argument("--id-column", help="the id column (default: guessed)")
    parser.add_argument("--event-time-column", help="the event-time column (default: guessed)")
    parser.add_argument("--name", help="the dataset's name (default: from the file name)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print a drafted spec for a sample file.

    Args:
        argv: the command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0, or 2 when the spec cannot be drafted (the reason is printed on stderr).
    """
    args = _parse_args(argv)
    options = Options(args.label, args.task, args.id_column, args.event_time_column, args.name)
    try:
        text = draft_spec(read_sample(args.file), options, source=str(args.file))
    except DraftError as error:
        print(f"spec_draft: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
