"""Storage on Azure: block blobs ``<container>/<prefix>/<key>`` through the Airflow WasbHook.

A block blob upload is atomic (a single Put Blob, or Put Block List after the blocks are
staged: readers see the old blob or the new one, never half of one), so a write is one upload
and a re-run overwrites the same name. A conditional write is an upload with ``If-Match:
<ETag>`` (``match_condition=IfNotModified``) or ``If-None-Match: *`` (create only): the
service checks and writes in one step, so an object's version is its ETag.
"""

from __future__ import annotations

import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from providers.base import PreconditionFailedError, check_key


class BlobObjectStore:
    """Objects ``<prefix>/<key>`` in one container; credentials from the Airflow Connection ``conn_id``."""

    def __init__(self, conn_id: str, container: str, prefix: str = "") -> None:
        self.conn_id = conn_id
        self.container = container
        self.prefix = prefix.strip("/")

    @cached_property
    def hook(self) -> Any:
        """The WasbHook (created on first use)."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        return WasbHook(wasb_conn_id=self.conn_id)

    @cached_property
    def container_client(self) -> Any:
        """The azure-storage-blob ContainerClient of the hook's connection."""
        return self.hook.blob_service_client.get_container_client(self.container)

    def blob_name(self, key: str) -> str:
        """Return the blob name that holds ``key``."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

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
        return self.container_client.get_blob_client(self.blob_name(key))

    def uri(self, key: str) -> str:
        """Return the blob's URL (``https://<account>.blob.core.windows.net/<container>/<prefix>/<key>``)."""
        return self._blob(key).url

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (overwrite) an object in one upload."""
        blob = self._blob(key)
        blob.upload_blob(data, overwrite=True)
        return blob.url

    def put_file(self, key: str, path: Path) -> str:
        """Upload a local file (in blocks if large; the blob appears only when the list is committed)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no local file {path} to upload to {self.uri(key)}")
        blob = self._blob(key)
        with open(path, "rb") as source:
            blob.upload_blob(source, overwrite=True)
        return blob.url

    def get_bytes(self, key: str) -> bytes:
        """Read an object. Raises FileNotFoundError if it does not exist."""
        return self.get_with_version(key)[0]

    def get_with_version(self, key: str) -> tuple[bytes, str]:
        """Read an object and its ETag (one download: the ETag belongs to exactly these bytes)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._blob(key).download_blob()
            return downloader.readall(), downloader.properties.etag
        except ResourceNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None

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
        return result["etag"]

    def get_file(self, key: str, path: Path) -> Path:
        """Download an object to ``path`` (through a temporary file, renamed when complete)."""
        from azure.core.exceptions import ResourceNotFoundError

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as target:
                self._blob(key).download_blob().readinto(target)
            os.replace(tmp, path)
        except ResourceNotFoundError:
            Path(tmp).unlink(missing_ok=True)
            raise FileNotFoundError(f"no object {key!r} in {self._root()}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def exists(self, key: str) -> bool:
        """Tell whether an object exists (a HEAD request)."""
        return bool(self.hook.check_for_blob(self.container, self.blob_name(key)))

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix`` (a string prefix, as Blob Storage lists), sorted."""
        if prefix:
            check_key(prefix.rstrip("/"))
        root = f"{self.prefix}/" if self.prefix else ""
        names = self.hook.get_blobs_list_recursive(self.container, prefix=root + prefix)
        return sorted(n[len(root) :] for n in names if n.startswith(root))

    def delete(self, key: str) -> None:
        """Delete an object if it exists."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._blob(key).delete_blob()
        except ResourceNotFoundError:
            pass

    def _root(self) -> str:
        return f"{self.container_client.url}/{self.prefix}" if self.prefix else self.container_client.url
