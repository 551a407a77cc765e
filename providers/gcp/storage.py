"""Storage on GCP: objects under ``gs://<bucket>/<prefix>/``, through the Airflow GCSHook's client.

A GCS upload is atomic (readers see the old object or the new one), so a write is one upload
and a re-run overwrites the same key. Every write makes a new *generation* of the object, and
an upload can be made conditional on it (``ifGenerationMatch``): GCS checks and writes in one
step, and ``ifGenerationMatch=0`` means "only if there is no live object". So an object's
version here is its generation, read from the same response that returned its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from providers.base import PreconditionFailedError
from providers.bucket import BucketStore


class GcsObjectStore(BucketStore):
    """Objects ``<prefix>/<key>`` in one bucket; credentials from the Airflow Connection ``conn_id``."""

    def __init__(self, conn_id: str, bucket: str, prefix: str = "") -> None:
        super().__init__(conn_id, prefix)
        self.bucket_name = bucket

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

    @property
    def bucket_uri(self) -> str:
        """``gs://bucket``."""
        return f"gs://{self.bucket_name}"

    def _write(self, name: str, data: bytes) -> None:
        self.bucket.blob(name).upload_from_string(data)

    def _upload(self, name: str, path: Path) -> None:
        # resumable for large files: the object appears when complete
        self.bucket.blob(name).upload_from_filename(str(path))

    def _read(self, name: str) -> tuple[bytes, str]:
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(name)
        try:
            data = blob.download_as_bytes()
        except NotFound:
            raise FileNotFoundError(name) from None
        return data, str(blob.generation)  # the generation of the response that carried the bytes

    def _download(self, name: str, path: Path) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(name).download_to_filename(str(path))
        except NotFound:
            raise FileNotFoundError(name) from None

    def _exists(self, name: str) -> bool:
        return bool(self.bucket.blob(name).exists())  # a metadata request

    def _names(self, prefix: str) -> Iterator[str]:
        return (blob.name for blob in self.client.list_blobs(self.bucket_name, prefix=prefix))

    def _remove(self, name: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(name).delete()
        except NotFound:
            pass

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


def split_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/name`` into (bucket, name)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not a gs://bucket/object URI")
    bucket, name = uri[5:].split("/", 1)
    return bucket, name
