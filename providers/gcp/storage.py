"""Storage on GCP: objects under ``gs://<bucket>/<prefix>/``, through the Airflow GCSHook's client.

A GCS upload is atomic (readers see the old object or the new one), so a write is one upload
and a re-run overwrites the same key. Every write makes a new *generation* of the object, and
an upload can be made conditional on it (``ifGenerationMatch``): GCS checks and writes in one
step, and ``ifGenerationMatch=0`` means "only if there is no live object". So an object's
version here is its generation, read from the same response that returned its bytes.
"""

from __future__ import annotations

import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

from providers.base import PreconditionFailedError, check_key


class GcsObjectStore:
    """Objects ``<prefix>/<key>`` in one bucket; credentials from the Airflow Connection ``conn_id``."""

    def __init__(self, conn_id: str, bucket: str, prefix: str = "") -> None:
        self.conn_id = conn_id
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")

    @cached_property
    def hook(self) -> Any:
        """The GCSHook (created on first use)."""
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return GCSHook(gcp_conn_id=self.conn_id)

    @cached_property
    def client(self) -> Any:
        """The google-cloud-storage client of the hook (thread-safe for these calls)."""
        return self.hook.get_conn()

    @property
    def bucket(self) -> Any:
        """The bucket (no request: a handle)."""
        return self.client.bucket(self.bucket_name)

    def object_name(self, key: str) -> str:
        """Return the object name that holds ``key``."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """Return ``gs://bucket/prefix/key``."""
        return f"gs://{self.bucket_name}/{self.object_name(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (overwrite) an object in one upload."""
        self.bucket.blob(self.object_name(key)).upload_from_string(data)
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        """Upload a local file (resumable for large files: the object appears when complete)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no local file {path} to upload to {self.uri(key)}")
        self.bucket.blob(self.object_name(key)).upload_from_filename(str(path))
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        """Read an object. Raises FileNotFoundError if it does not exist."""
        return self.get_with_version(key)[0]

    def get_with_version(self, key: str) -> tuple[bytes, str]:
        """Read an object and its generation (the one of the response that carried the bytes)."""
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(self.object_name(key))
        try:
            data = blob.download_as_bytes()
        except NotFound:
            raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None
        return data, str(blob.generation)

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Upload only if the object's generation is ``expected_version`` (None: only if missing).

        Raises:
            PreconditionFailedError: GCS refused the upload (412); nothing was written.
        """
        from google.api_core.exceptions import PreconditionFailed

        name = self.object_name(key)
        if expected_version is None:
            generation = 0  # GCS: "no live object"
        elif expected_version.isdigit() and int(expected_version) > 0:
            generation = int(expected_version)
        else:  # not a generation this store handed out: it cannot match
            raise PreconditionFailedError(f"{self.uri(key)}: {expected_version!r} is not a GCS generation")
        blob = self.bucket.blob(name)
        try:
            blob.upload_from_string(data, if_generation_match=generation)
        except PreconditionFailed:
            raise PreconditionFailedError(
                f"{self.uri(key)} is not at generation {expected_version or '(missing)'}: another writer "
                "changed it; read it again"
            ) from None
        return str(blob.generation)

    def get_file(self, key: str, path: Path) -> Path:
        """Download an object to ``path`` (through a temporary file, renamed when complete)."""
        from google.api_core.exceptions import NotFound

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self.bucket.blob(self.object_name(key)).download_to_filename(tmp)
            os.replace(tmp, path)
        except NotFound:
            Path(tmp).unlink(missing_ok=True)
            raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def exists(self, key: str) -> bool:
        """Tell whether an object exists (a metadata request)."""
        return bool(self.bucket.blob(self.object_name(key)).exists())

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix`` (a string prefix, as GCS lists), sorted."""
        if prefix:
            check_key(prefix.rstrip("/"))
        root = f"{self.prefix}/" if self.prefix else ""
        names = (blob.name for blob in self.client.list_blobs(self.bucket_name, prefix=root + prefix))
        return sorted(n[len(root) :] for n in names if n.startswith(root) and not n.endswith("/"))

    def delete(self, key: str) -> None:
        """Delete an object if it exists."""
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(self.object_name(key)).delete()
        except NotFound:
            pass

    def _root(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}" if self.prefix else f"gs://{self.bucket_name}"


def split_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/name`` into (bucket, name)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not a gs://bucket/object URI")
    bucket, name = uri[5:].split("/", 1)
    return bucket, name
