"""The model registry on the local provider: MLflow (SQLite store) plus the alias ledger.

MLflow keeps runs (params, metrics, lineage tags) and model versions. Aliases and their history
(who, when, why) live in the alias ledger every provider shares (providers/ledger.py: one JSON
object per alias in the provider's storage, moved by compare-and-set); the MLflow alias is a
mirror written after the ledger moved, so MLflow's UI and clients see the same production.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.artifacts import check_artifact_sha256
from providers.base import ModelVersion, ObjectStore
from providers.ledger import AliasLedger, AliasState, LedgerAliases

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

ARTIFACT_FILE = "model.joblib"


class MlflowModelRegistry(LedgerAliases):
    """MLflow tracking + model registry in ``root``; aliases in the ledger in ``storage``."""

    def __init__(self, root: Path, storage: ObjectStore) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifact_root = (self.root / "artifacts").as_uri()
        self.ledger = AliasLedger(storage)
        self._client: MlflowClient | None = None

    # -- MLflow plumbing -------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The MLflow client, created on first use (MLflow takes seconds to import)."""
        if self._client is None:
            import logging

            from mlflow.tracking import MlflowClient

            logging.getLogger("alembic").setLevel(logging.WARNING)
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self, model_name: str) -> str:
        experiment = self.client.get_experiment_by_name(model_name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(
            model_name, artifact_location=f"{self.artifact_root}/{model_name}"
        )

    def _to_model_version(self, mv: Any) -> ModelVersion:
        run = self.client.get_run(mv.run_id) if mv.run_id else None
        tags = dict(mv.tags or {})
        return ModelVersion(
            model_name=mv.name,
            version=str(mv.version),
            artifact_uri=mv.source,
            sha256=tags.get("sha256", ""),
            registry_key=tags.get("registry_key", ""),
            metrics=dict(run.data.metrics) if run else {},
            tags={**(dict(run.data.tags) if run else {}), **tags},
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(),
        )

    # -- ModelRegistry ---------------------------------------------------------------------

    def register(
        self,
        model_name: str,
        model_key: str,
        registry_key: str,
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> ModelVersion:
        """Log a run with the artifact, params, metrics and lineage; create a model version.

        A version whose ``registry_key`` tag matches is returned instead of creating another.
        """
        from mlflow.exceptions import MlflowException

        from core.ml.scoring.artifacts import file_sha256

        for existing in self.list_versions(model_name):
            if existing.registry_key == registry_key:
                return existing
        try:
            self.client.create_registered_model(model_name)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        with tempfile.TemporaryDirectory() as tmp:
            local = self.storage.get_file(model_key, Path(tmp) / "model" / ARTIFACT_FILE)
            sha256 = file_sha256(local)
            (local.parent / "registration.json").write_text(
                json.dumps({"registry_key": registry_key, "model_key": model_key, "sha256": sha256}, indent=2)
            )
            run = self.client.create_run(
                self._experiment_id(model_name),
                run_name=registry_key,
                tags={**{k: str(v) for k, v in tags.items()}, "registry_key": registry_key},
            )
            run_id = run.info.run_id
            for name, value in params.items():
                self.client.log_param(run_id, name, value)
            for name, value in metrics.items():
                if value is not None:
                    self.client.log_metric(run_id, name, float(value))
            self.client.log_artifacts(run_id, str(local.parent), artifact_path="model")
            self.client.set_terminated(run_id)
        source = f"{run.info.artifact_uri}/model"
        mv = self.client.create_model_version(
            model_name,
            source=source,
            run_id=run_id,
            tags={"registry_key": registry_key, "sha256": sha256, "model_key": model_key},
        )
        return self._to_model_version(mv)

    def get_version(self, model_name: str, version: str) -> ModelVersion:
        """Return one version."""
        from mlflow.exceptions import MlflowException

        try:
            return self._to_model_version(self.client.get_model_version(model_name, str(version)))
        except MlflowException:
            raise KeyError(f"model {model_name!r} has no version {version!r}") from None

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Return every version, oldest first."""
        found = self.client.search_model_versions(f"name = '{_quote(model_name)}'")
        return sorted((self._to_model_version(mv) for mv in found), key=lambda v: int(v.version))

    def alias_mirror(self, model_name: str, alias: str) -> Callable[[AliasState], None] | None:
        """The mirror: an MLflow alias of the same name (for MLflow's UI and clients)."""
        return partial(self._mirror_alias, model_name, alias)

    def _mirror_alias(self, model_name: str, alias: str, state: AliasState) -> None:
        """Point the MLflow alias where the ledger points (for MLflow's UI and clients).

        MLflow's SQLite store inserts a new alias row after looking for one, so two first
        mirrors racing can hit its UNIQUE constraint: the loser tries again (it then updates).
        """
        from mlflow.exceptions import MlflowException

        if state.current is None:
            return
        for attempt in range(5):
            try:
                self.client.set_registered_model_alias(model_name, alias, state.current)
                return
            except MlflowException:
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        """Copy the version's model.joblib into ``directory``, refusing it if its sha256 differs."""
        from mlflow.artifacts import download_artifacts

        from core.ml.scoring.artifacts import file_sha256

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            downloaded = Path(
                download_artifacts(
                    artifact_uri=f"{version.artifact_uri}/{ARTIFACT_FILE}",
                    dst_path=tmp,
                    tracking_uri=self.tracking_uri,
                )
            )
            check_artifact_sha256(version, file_sha256(downloaded))
            target = directory / ARTIFACT_FILE
            shutil.move(str(downloaded), target)
        return target


def _quote(value: str) -> str:
    return value.replace("'", "''")
