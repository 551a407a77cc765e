"""The model registry on the local provider: MLflow (SQLite store) plus an alias history.

MLflow keeps runs (params, metrics, lineage tags), model versions and aliases, but only an
alias's current target. The history of every alias move (who, when, why) is kept beside it in
a small SQLite table, written in the same lock as the move so the history stays linear.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.errors import ArtifactIntegrityError
from providers.base import ANY_VERSION, AliasChange, ModelVersion, ObjectStore

ARTIFACT_FILE = "model.joblib"


class MlflowModelRegistry:
    """MLflow tracking + model registry in ``root``; alias history in ``root/alias_history.db``."""

    def __init__(self, root: Path, storage: ObjectStore) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.tracking_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifact_root = (self.root / "artifacts").as_uri()
        self.history_path = self.root / "alias_history.db"
        self._client = None

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

        from include.ml.scoring import file_sha256

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

    def get_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        """Return the version the alias points to, or None."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None
        return self._to_model_version(mv)

    def set_alias(
        self,
        model_name: str,
        alias: str,
        version: str,
        reason: str,
        actor: str,
        expected_current: str | None | object = ANY_VERSION,
    ) -> AliasChange | None:
        """Move the alias and append the move to its history, under one lock."""
        self.get_version(model_name, version)  # fail before touching anything if it does not exist
        with self._history() as db:
            db.execute("BEGIN IMMEDIATE")  # serialises concurrent moves: one linear history
            row = db.execute(
                "SELECT version FROM alias_history WHERE model_name = ? AND alias = ? "
                "ORDER BY id DESC LIMIT 1",
                (model_name, alias),
            ).fetchone()
            previous = row[0] if row else None
            stale = expected_current is not ANY_VERSION and expected_current != previous
            if previous == str(version) or stale:
                db.execute("COMMIT")
                return None
            change = AliasChange(
                model_name=model_name,
                alias=alias,
                version=str(version),
                previous_version=previous,
                reason=reason,
                actor=actor,
                changed_at=datetime.now(UTC).isoformat(),
            )
            self.client.set_registered_model_alias(model_name, alias, str(version))
            db.execute(
                "INSERT INTO alias_history (model_name, alias, version, previous_version, reason, actor, "
                "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model_name, alias, change.version, previous, reason, actor, change.changed_at),
            )
            db.execute("COMMIT")
        return change

    def alias_history(self, model_name: str, alias: str) -> list[AliasChange]:
        """Return the alias's moves, oldest first."""
        with self._history() as db:
            rows = db.execute(
                "SELECT model_name, alias, version, previous_version, reason, actor, changed_at "
                "FROM alias_history WHERE model_name = ? AND alias = ? ORDER BY id",
                (model_name, alias),
            ).fetchall()
        return [AliasChange(*row) for row in rows]

    def fetch_artifact(self, version: ModelVersion, directory: Path) -> Path:
        """Copy the version's model.joblib into ``directory``, refusing it if its sha256 differs."""
        from mlflow.artifacts import download_artifacts

        from include.ml.scoring import file_sha256

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
            actual = file_sha256(downloaded)
            if not version.sha256 or actual != version.sha256:
                raise ArtifactIntegrityError(
                    f"model {version.model_name} v{version.version}: artifact {version.artifact_uri} has "
                    f"sha256 {actual}, but {version.sha256 or 'nothing'} was recorded at registration; "
                    "refusing to load it. Re-register the model from its training output."
                )
            target = directory / ARTIFACT_FILE
            shutil.move(str(downloaded), target)
        return target

    # -- alias history store ---------------------------------------------------------------

    def _history(self) -> _Closing:
        db = sqlite3.connect(self.history_path, timeout=60, isolation_level=None)
        db.execute(
            "CREATE TABLE IF NOT EXISTS alias_history (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "model_name TEXT NOT NULL, alias TEXT NOT NULL, version TEXT NOT NULL, previous_version TEXT, "
            "reason TEXT NOT NULL, actor TEXT NOT NULL, changed_at TEXT NOT NULL)"
        )
        return _Closing(db)


class _Closing:
    """``with`` support that closes a sqlite3 connection (its own context manager only commits)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()


def _quote(value: str) -> str:
    return value.replace("'", "''")
