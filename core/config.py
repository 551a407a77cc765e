"""The project's settings, read from astro.toml when a task runs.

``load_settings()`` finds the file (``MLOPS_CONFIG`` or astro.toml at the project root), checks
every value, and returns a frozen :class:`Settings`. Per-run overrides (the DAG Params) go
through :meth:`Settings.with_overrides`, which checks them the same way.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from core.catalogue import PROVIDER_NAMES
from core.errors import ConfigError, ParamError
from core.ml.dataset import TASK_METRICS, DatasetSpec, DatasetSpecError, parse_spec
from core.routing import parse_routing

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# build_section builds any dataclass; not bound to DataclassInstance, so a base class whose
# subclasses are the dataclasses (providers/settings.py) can call it with ``Self``
T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_WEEK = re.compile(r"^\d{4}-W\d{2}$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+$")
DEMO_SPEC = "demo/churn_dataset.toml"


@dataclass(frozen=True)
class DataSettings:
    """Where a week's raw data comes from."""

    source: str = "sample"
    rows_per_week: int = 5000
    seed: int = 42
    covariate_drift_from_week: str = ""
    concept_drift_from_week: str = ""


@dataclass(frozen=True)
class ValidationSettings:
    """How strict validation is."""

    max_bad_row_fraction: float = 0.05
    min_rows: int = 100


@dataclass(frozen=True)
class TrainingSettings:
    """The training window and the model's hyperparameters."""

    window_weeks: int = 4
    holdout_fraction: float = 0.2
    # stop adding rounds when a split of the training rows stops improving (estimators that can)
    early_stopping: bool = True


@dataclass(frozen=True)
class ModelSettings:
    """The estimator (an import path; empty: HistGradientBoosting for the task) and its parameters."""

    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateSettings:
    """The challenger-vs-champion gate: a metric of the task (empty: the task's first) and a margin."""

    metric: str = ""
    margin: float = 0.0


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds of the drift monitor, and how sure it must be before it calls drift (docs/drift.md)."""

    feature_psi_threshold: float = 0.2
    drifted_share_threshold: float = 0.15
    prediction_psi_threshold: float = 0.2
    concept_metric_drop: float = 0.05
    # a finding needs its effect beyond the noise: the metric drop's bootstrap interval at this
    # level excludes 0, a PSI is over what a clean sample reaches with this confidence
    confidence: float = 0.99
    bootstrap_resamples: int = 400
    min_rows: int = 100  # a week (or reference) with fewer rows is not judged for data and prediction drift
    min_labelled_rows: int = 50  # fewer labelled held-out rows: concept drift not judged
    min_class_rows: int = 10  # classification: fewer rows of a class among them: not judged
    cooldown_weeks: int = 2  # after a retrain for a cause, the next weeks retrain again for it ...
    cooldown_growth: float = 1.5  # ... only if its effect grew by this factor


@dataclass(frozen=True)
class MonitoringSettings:
    """Thresholds of serving health (operations, not drift: a breach alerts, never retrains)."""

    max_error_rate: float = 0.01  # share of a week's requests answered 5xx (the endpoint's fault)
    max_client_error_rate: float = 0.10  # share answered 4xx (callers sending what the model cannot read)
    max_p99_ms: float = 500.0  # the week's 99th percentile latency


@dataclass(frozen=True)
class AlertSettings:
    """Who hears of a serving breach: the Airflow Connections serving_alert's notifier sends through.

    Both channels empty: nothing is sent (the failed ``serving_alert`` task is the only alert).
    """

    email_conn_id: str = ""  # an SMTP Connection (conn type ``smtp``)
    email_to: list[str] = field(default_factory=list)  # recipients of the email
    email_from: str = ""  # the sender; empty: the connection's ``from_email`` extra
    slack_conn_id: str = ""  # a Slack Incoming Webhook Connection (conn type ``slackwebhook``)


@dataclass(frozen=True)
class Settings:
    """Everything a task needs to know about the project, for one run."""

    provider: str = "local"
    model_name: str = "model"
    dataset: DatasetSpec = field(default_factory=lambda: load_dataset_spec(PROJECT_ROOT / DEMO_SPEC))
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # Per-provider sections ([local], [aws], ...) and hardware profiles, kept as plain dicts:
    # each provider checks its own section when it is loaded.
    provider_sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    hardware: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    config_path: Path = PROJECT_ROOT / "astro.toml"

    @property
    def gate_metric(self) -> str:
        """The gate's metric: ``[gate] metric``, else the dataset task's first metric."""
        return self.gate.metric or TASK_METRICS[self.dataset.task][0]

    @property
    def estimator(self) -> str:
        """The estimator's import path: ``[model] estimator``, else HistGradientBoosting for the task."""
        if self.model.estimator:
            return self.model.estimator
        kind = "Regressor" if self.dataset.task == "regression" else "Classifier"
        return f"sklearn.ensemble.HistGradientBoosting{kind}"

    def provider_settings(self) -> dict[str, Any]:
        """Return the ``[<provider>]`` section of astro.toml for the selected provider."""
        return dict(self.provider_sections.get(self.provider, {}))

    def hardware_profile(self, purpose: str) -> dict[str, Any]:
        """Return the ``[hardware.<purpose>.<provider>]`` profile (purpose: training or inference)."""
        if purpose not in ("training", "inference"):
            raise ValueError(f"hardware purpose must be 'training' or 'inference', not {purpose!r}")
        return dict(self.hardware.get(purpose, {}).get(self.provider, {}))

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with per-run overrides (DAG Params) applied and checked.

        Args:
            **overrides: ``provider``, ``gate_margin``, ``feature_psi_threshold``,
                ``drifted_share_threshold``, ``window_weeks``; a value of None keeps astro.toml's.

        Raises:
            ParamError: an override has an unknown name or an invalid value.
        """
        known = {
            "provider": (None, "provider"),
            "gate_margin": ("gate", "margin"),
            "feature_psi_threshold": ("drift", "feature_psi_threshold"),
            "drifted_share_threshold": ("drift", "drifted_share_threshold"),
            "window_weeks": ("training", "window_weeks"),
        }
        result = self
        for name, value in overrides.items():
            if value is None or value == "":
                continue
            if name not in known:
                raise ParamError(f"unknown override {name!r}; expected one of {sorted(known)}")
            section, attr = known[name]
            if name == "window_weeks" and isinstance(value, float) and value.is_integer():
                value = int(value)  # a JSON Param may hand over 4.0
            if name == "window_weeks" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ParamError(f"invalid run parameter: window_weeks = {value!r} must be a whole number")
            if section is None:
                result = dataclasses.replace(result, **{attr: value})
            else:
                sub = dataclasses.replace(getattr(result, section), **{attr: value})
                result = dataclasses.replace(result, **{section: sub})
        try:
            _check(result)
        except ConfigError as exc:
            raise ParamError(f"invalid run parameter: {exc}") from None
        return result


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and check the project's settings.

    Args:
        path: the TOML file; default ``$MLOPS_CONFIG`` or astro.toml at the project root.

    Returns:
        The checked settings.

    Raises:
        ConfigError: the file is missing, is not TOML, or holds an invalid value.
    """
    config_path = Path(path or os.environ.get("MLOPS_CONFIG") or PROJECT_ROOT / "astro.toml")
    if not config_path.is_file():
        raise ConfigError(
            f"settings file {config_path} not found: create it (see astro.toml in the project root) "
            "or point MLOPS_CONFIG at it"
        )
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid TOML: {exc}") from None
    project = raw.get("project", {})
    unknown = sorted(set(project) - {"provider", "model_name"})
    if unknown:
        raise ConfigError(
            f"{config_path}: unknown key(s) {unknown} in [project]; known keys: ['model_name', 'provider']"
        )
    sections: dict[str, type] = {
        "data": DataSettings,
        "validation": ValidationSettings,
        "training": TrainingSettings,
        "gate": GateSettings,
        "drift": DriftSettings,
        "monitoring": MonitoringSettings,
        "alerts": AlertSettings,
    }
    # [airflow]: the tasks' queues and pool, read when DAG files are parsed (core/routing.py)
    known_tables = {"project", "hardware", "dataset", "model", "airflow", *sections, *PROVIDER_NAMES}
    unknown = sorted(set(raw) - known_tables)
    if unknown:
        raise ConfigError(f"{config_path}: unknown section(s) {unknown}; known: {sorted(known_tables)}")
    parse_routing(raw.get("airflow", {}), config_path)
    kwargs: dict[str, Any] = {}
    for key, cls in sections.items():
        kwargs[key] = build_section(cls, raw.get(key, {}), f"[{key}]", path=config_path)
    settings = Settings(
        provider=os.environ.get("MLOPS_PROVIDER") or project.get("provider", "local"),
        model_name=project.get("model_name", "model"),
        dataset=_dataset(raw.get("dataset"), config_path),
        model=_model(raw.get("model", {}), config_path),
        provider_sections={name: raw.get(name, {}) for name in PROVIDER_NAMES},
        hardware=raw.get("hardware", {}),
        config_path=config_path,
        **kwargs,
    )
    try:
        _check(settings)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    return settings


def load_dataset_spec(path: Path) -> DatasetSpec:
    """Read a dataset spec file (TOML with a ``[dataset]`` table).

    Raises:
        ConfigError: the file is missing, is not TOML or holds an invalid spec.
    """
    if not path.is_file():
        raise ConfigError(f"dataset spec file {path} not found: fix [dataset] spec in the settings")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"dataset spec {path} is not valid TOML: {exc}") from None
    if set(raw) != {"dataset"}:
        raise ConfigError(f"dataset spec {path} must hold one [dataset] table, it holds {sorted(raw)}")
    try:
        return parse_spec(raw["dataset"], f"{path}: [dataset]")
    except DatasetSpecError as exc:
        raise ConfigError(str(exc)) from None


def _dataset(raw: Any, config_path: Path) -> DatasetSpec:
    """The ``[dataset]`` table: ``spec = "file.toml"`` or the spec's keys inline."""
    if raw is None:
        raw = {"spec": DEMO_SPEC}
    if not isinstance(raw, dict):
        raise ConfigError(f"{config_path}: [dataset] must be a table")
    if "spec" in raw:
        if len(raw) > 1:
            raise ConfigError(
                f"{config_path}: [dataset] names a spec file and also has keys "
                f"{sorted(set(raw) - {'spec'})}: "
                "keep one of the two"
            )
        path = _spec_path(raw["spec"], config_path)
        try:
            return load_dataset_spec(path)
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
    try:
        return parse_spec(raw, f"{config_path}: [dataset]")
    except DatasetSpecError as exc:
        raise ConfigError(str(exc)) from None


def _spec_path(named: str, config_path: Path) -> Path:
    """The spec file ``[dataset] spec`` names.

    Relative to the settings file, else to the project (the shipped demo spec).
    """
    candidates = [Path(named)] if Path(named).is_absolute() else [
        config_path.parent / named, PROJECT_ROOT / named]  # fmt: skip
    return next((p for p in candidates if p.is_file()), candidates[0])


def dataset_spec_location(settings: Settings) -> str:
    """Where the settings' dataset spec is written, for a message: its file, or ``[dataset] in ...``."""
    try:
        raw = tomllib.loads(settings.config_path.read_text(encoding="utf-8")).get("dataset") or {}
    except (OSError, tomllib.TOMLDecodeError):
        raw = {}
    if isinstance(raw, dict) and raw.get("spec"):
        return str(_spec_path(raw["spec"], settings.config_path))
    return f"[dataset] in {settings.config_path}"


def _model(raw: Any, config_path: Path) -> ModelSettings:
    """The ``[model]`` table: ``estimator`` (an import path) and a ``params`` table."""
    where = f"{config_path}: [model]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(raw) - {"estimator", "params"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: ['estimator', 'params']")
    estimator = raw.get("estimator", "")
    if not isinstance(estimator, str) or (estimator and not _IMPORT_PATH.fullmatch(estimator)):
        raise ConfigError(
            f"{where} estimator = {estimator!r} must be an import path like "
            "'sklearn.ensemble.RandomForestClassifier', or empty"
        )
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where} params must be a table of the estimator's parameters")
    for key, value in params.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(f"{where} params.{key} = {value!r} must be a number, a string or a boolean")
        if isinstance(value, float) and value != value:
            raise ConfigError(f"{where} params.{key} = nan is not a valid value")
    return ModelSettings(estimator=estimator, params=dict(params))


def build_section(
    cls: type[T],
    values: Mapping[str, Any],
    where: str,
    *,
    path: Path | None = None,
    skip: tuple[str, ...] = (),
) -> T:
    """Build a settings dataclass from a TOML table, rejecting unknown keys and wrong types.

    The one section builder of the project: the core's sections and every provider's
    (``[aws]``, ``[hardware.training.gcp]``, ...) are read by it, with one behaviour: an int
    is accepted where a float is expected (``margin = 0``), a boolean never stands for a number.

    Args:
        cls: a dataclass whose every field has a default (its type is the default's type).
        values: the TOML table.
        where: the table's name in astro.toml (``[aws]``), for the error message.
        path: the settings file, named at the start of the message when given.
        skip: fields that are not read from the table.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type; the message names both.
    """
    prefix = f"{path}: " if path is not None else ""
    defaults = cls()
    as_dataclass = cast("type[DataclassInstance]", cls)  # dataclasses.fields checks it at run time
    fields = [f.name for f in dataclasses.fields(as_dataclass) if f.name not in skip]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}unknown key(s) {unknown} in {where}; known keys: {sorted(fields)}")
    read: dict[str, Any] = {}
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        number_for_float = expected is float and isinstance(value, int)
        if isinstance(value, bool) != (expected is bool) or not (
            isinstance(value, expected) or number_for_float
        ):
            raise ConfigError(f"{prefix}{where} {key} = {value!r} should be of type {expected.__name__}")
        read[key] = float(value) if number_for_float else value
    return cls(**read)


def _check(s: Settings) -> None:
    """Check values that types alone do not catch."""
    if not isinstance(s.provider, str) or s.provider not in PROVIDER_NAMES:
        raise ConfigError(f"provider {s.provider!r} is not one of {list(PROVIDER_NAMES)}")
    if not isinstance(s.model_name, str) or not _NAME.fullmatch(s.model_name):
        raise ConfigError(
            f"model_name {s.model_name!r} must be lowercase letters, digits and underscores, "
            "starting with a letter"
        )
    for name in ("covariate_drift_from_week", "concept_drift_from_week"):
        value = getattr(s.data, name)
        if value and not (_WEEK.fullmatch(value) and _week_exists(value)):
            raise ConfigError(f"[data] {name} = {value!r} must be an ISO week like 2026-W05, or empty")
    checks = [
        (s.data.rows_per_week, 1, 50_000_000, "[data] rows_per_week"),
        (s.validation.max_bad_row_fraction, 0.0, 1.0, "[validation] max_bad_row_fraction"),
        (s.validation.min_rows, 1, 10**9, "[validation] min_rows"),
        (s.training.window_weeks, 1, 104, "[training] window_weeks"),
        (s.training.holdout_fraction, 0.05, 0.5, "[training] holdout_fraction"),
        (s.gate.margin, 0.0, 0.5, "[gate] margin"),
        (s.drift.feature_psi_threshold, 0.001, 10.0, "[drift] feature_psi_threshold"),
        (s.drift.drifted_share_threshold, 0.001, 1.0, "[drift] drifted_share_threshold"),
        (s.drift.prediction_psi_threshold, 0.001, 10.0, "[drift] prediction_psi_threshold"),
        (s.drift.concept_metric_drop, 0.0, 1e9, "[drift] concept_metric_drop"),
        (s.drift.confidence, 0.5, 0.9999, "[drift] confidence"),
        (s.drift.bootstrap_resamples, 50, 100_000, "[drift] bootstrap_resamples"),
        (s.drift.min_rows, 1, 10**9, "[drift] min_rows"),
        (s.drift.min_labelled_rows, 1, 10**9, "[drift] min_labelled_rows"),
        (s.drift.min_class_rows, 1, 10**9, "[drift] min_class_rows"),
        (s.drift.cooldown_weeks, 0, 104, "[drift] cooldown_weeks"),
        (s.drift.cooldown_growth, 1.0, 1e6, "[drift] cooldown_growth"),
        (s.monitoring.max_error_rate, 0.0, 1.0, "[monitoring] max_error_rate"),
        (s.monitoring.max_client_error_rate, 0.0, 1.0, "[monitoring] max_client_error_rate"),
        (s.monitoring.max_p99_ms, 0.001, 3_600_000, "[monitoring] max_p99_ms"),
    ]
    for value, low, high, name in checks:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(f"{name} = {value!r} must be a number between {low} and {high}")
    _check_alerts(s.alerts)
    metrics = TASK_METRICS[s.dataset.task]
    if s.gate.metric and s.gate.metric not in metrics:
        raise ConfigError(
            f"[gate] metric {s.gate.metric!r} is not a metric of a {s.dataset.task} task: use one of "
            f"{list(metrics)} (or leave it empty for {metrics[0]})"
        )


# what Airflow accepts as a connection id (letters, digits and -_.:, as in AIRFLOW_CONN_<ID>)
_CONN_ID = re.compile(r"^[\w.:-]{1,250}$")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def _check_alerts(alerts: AlertSettings) -> None:
    """The [alerts] section: connection ids that Airflow could hold, and an email's recipients."""
    for key in ("email_conn_id", "slack_conn_id"):
        value = getattr(alerts, key)
        if value and not _CONN_ID.fullmatch(value):
            raise ConfigError(
                f"[alerts] {key} = {value!r} is not an Airflow connection id (letters, digits, '_', '-', "
                "'.'); name the Connection to send alerts through, or leave it empty for none"
            )
    for address in [*alerts.email_to, *([alerts.email_from] if alerts.email_from else [])]:
        if not isinstance(address, str) or not _EMAIL.fullmatch(address):
            raise ConfigError(f"[alerts] {address!r} is not an email address like ops@example.com")
    if alerts.email_conn_id and not alerts.email_to:
        raise ConfigError(
            f"[alerts] email_conn_id = {alerts.email_conn_id!r} but email_to is empty: list the recipients, "
            'e.g. email_to = ["ops@example.com"], or empty email_conn_id'
        )
    if alerts.email_to and not alerts.email_conn_id:
        raise ConfigError(
            "[alerts] email_to lists recipients but email_conn_id is empty: name the SMTP Connection "
            "to send through (docs/operations.md, Alerts)"
        )


def _week_exists(value: str) -> bool:
    """Tell whether an ISO week like 2026-W53 exists (2026 has 53 weeks, 2027 has 52)."""
    from core.weeks import parse_week

    try:
        parse_week(value)
    except ParamError:
        return False
    return True
