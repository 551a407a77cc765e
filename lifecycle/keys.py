"""Where each artifact lives in storage. Every key is built from the week (and a version)."""

from __future__ import annotations


def raw_key(week: str, data_version: str, extension: str) -> str:
    """Immutable raw data of one week and data version."""
    return f"raw/week={week}/version={data_version}/data.{extension}"


def validated_key(week: str) -> str:
    """The rows of a week that passed validation."""
    return f"validated/week={week}/data.parquet"


def quarantine_prefix(week: str, data_version: str) -> str:
    """Quarantined rows or batches of one week and data version."""
    return f"quarantine/week={week}/version={data_version}"


def validation_report_key(week: str, data_version: str) -> str:
    """The validation report of one data version of a week (two sources of a week: two reports)."""
    return f"reports/validation/week={week}/version={data_version}/report.md"


def training_prefix(job_name: str) -> str:
    """Inputs and outputs of one training job."""
    return f"training/{job_name}"


def drift_report_key(week: str) -> str:
    """The drift report of a week."""
    return f"reports/drift/week={week}/report.html"
