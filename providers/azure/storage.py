"""Storage on Azure: block blobs ``<container>/<prefix>/<key>`` through the Airflow WasbHook.

A block blob upload is atomic (a single Put Blob, or Put Block List after the blocks are
staged: readers see the old blob or the new one, never half of one), so a write is one upload
and a re-run overwrites the same name. A conditional write is an upload with ``If-Match:
<ETag>`` (``match_condition=IfNotModified``) or ``If-None-Match: *`` (create only): the
service checks and writes in one step, so an object's version is its ETag.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from providers.base import PreconditionFailedError, check_key
from providers.bucket import BucketStore


class BlobObjectStore(BucketStore):
    """Objects ``<prefix>/<key>`` in one container; credentials from the Airflow Connection ``conn_id``."""

    def __init__(self, conn_id: str, container: str, prefix: str = "") -> None:
        super().__init__(conn_id, prefix)
        self.container = container

    @cached_property
    def hook(self) -> Any:
        """The WasbHook (created on first use)."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        return WasbHook(wasb_conn_id=self.conn_id)

    @cached_property
    def container_client(self) -> Any:
        """The azure-storage-blob ContainerClient of the hook's connection."""
        return self.hook.blob_service_client.get_container_client(self.container)

    @property
    def bucket_uri(self) -> str:
        """The container's URL."""
        return str(self.container_client.url)

    def key_of_uri(self, uri: str) -> str:
        """The storage key of a blob URL of this container and prefix (the inverse of :meth:`uri`).

        Raises:
            ValueError: the URL is not a blob of this store.
        """
        base = urlparse(self.container_client.url)
        parsed = urlparse(uri)
        container_path = base.path.rstrip("/") + "/"
        root = container_path + (f"{self.prefix}/" if self.prefix else "")
        if parsed.netloc != base.netloc or not unquote(parsed.path).startswith(root):
            raise ValueError(f"{uri!r} is not a blob under {self.container_client.url}/{self.prefix}")
        return check_key(unquote(parsed.path)[len(root) :])

    def _blob(self, key: str) -> Any:
        return self.container_client.get_blob_client(self.object_name(key))

    def uri(self, key: str) -> str:
        """Return the blob's URL (``https://<account>.blob.core.windows.net/<container>/<prefix>/<key>``)."""
        return str(self._blob(key).url)  # the SDK's URL: the name as the service quotes it

    def _write(self, name: str, data: bytes) -> None:
        self.container_client.get_blob_client(name).upload_blob(data, overwrite=True)

    def _upload(self, name: str, path: Path) -> None:
        # in blocks if large: the blob appears only when the block list is committed
        with open(path, "rb") as source:
            self.container_client.get_blob_client(name).upload_blob(source, overwrite=True)

    def _read(self, name: str) -> tuple[bytes, str]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self.container_client.get_blob_client(name).download_blob()
            return downloader.readall(), downloader.properties.etag  # one download: the ETag of these bytes
        except ResourceNotFoundError:
            raise FileNotFoundError(name) from None

    def _download(self, name: str, path: Path) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with open(path, "wb") as target:
                self.container_client.get_blob_client(name).download_blob().readinto(target)
        except ResourceNotFoundError:
            raise FileNotFoundError(name) from None

    def _exists(self, name: str) -> bool:
        return bool(self.hook.check_for_blob(self.container, name))  # a HEAD request

    def _names(self, prefix: str) -> list[str]:
        return list(self.hook.get_blobs_list_recursive(self.container, prefix=prefix))

    def _remove(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.container_client.get_blob_client(name).delete_blob()
        except ResourceNotFoundError:
            pass

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Upload only if the blob's ETag is ``expected_version`` (None: only if it is missing).

        Raises:
            PreconditionFailedError: the service refused the upload (412 for a changed or missing
                blob, 409 for an existing one); nothing was written.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        if expected_version:
            condition = {"etag": expected_version, "match_condition": MatchConditions.IfNotModified}
        else:
            condition = {"match_condition": MatchConditions.IfMissing}  # sent as If-None-Match: *
        try:
            result = self._blob(key).upload_blob(data, overwrite=True, **condition)
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            raise PreconditionFailedError(
                f"{self.uri(key)} is not at version {expected_version or '(missing)'} "
                f"({getattr(exc, 'error_code', None) or exc.status_code}): another writer changed it; "
                "read it again"
            ) from None
        return str(result["etag"])
