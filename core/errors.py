"""Errors a user can cause. Each message says what was wrong and how to fix it.

Tasks turn a :class:`DeterministicError` into ``AirflowFailException`` so Airflow does not retry
something that will fail the same way again (bad data, a bad parameter, a bad config).
"""


class MLOpsError(Exception):
    """Base class of the project's own errors."""


class DeterministicError(MLOpsError):
    """A failure that a retry cannot fix: bad data, a bad parameter or a bad configuration."""


class ConfigError(DeterministicError):
    """astro.toml (or a Param overriding it) is wrong."""


class ParamError(DeterministicError):
    """A DAG Param or ``dag_run.conf`` value is invalid."""


class DataValidationError(DeterministicError):
    """A week's data failed validation; it was quarantined."""


class ProviderNotAvailableError(ConfigError):
    """A provider is unknown, or its packages are not installed."""


class ArtifactIntegrityError(DeterministicError):
    """A model artifact does not match the sha256 recorded when it was registered."""
