"""The object store of a cloud bucket: the key handling, written once; a cloud writes its primitives.

An :class:`~providers.base.ObjectStore` on S3, GCS or Blob Storage is the same skeleton: a key
is checked and put under the store's prefix in one bucket (or container), a read of a missing
object says which store it looked in, a download goes through a temporary file renamed when
complete, a listing is a string prefix with the store's prefix taken off again. Only the calls
into the SDK differ, so :class:`BucketStore` owns the skeleton and a cloud writes the few
primitives below (the model is fsspec's ``AbstractFileSystem``: many methods derived from a few).

A primitive works on the object's *name* in the bucket (prefix included), never on a key; the
``_read`` and ``_download`` primitives raise ``FileNotFoundError`` (any message) for a missing
object and the base says which key and which store.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from providers.base import check_key


class BucketStore:
    """Objects ``<prefix>/<key>`` in one bucket; credentials from the Airflow Connection ``conn_id``.

    Subclasses set :attr:`bucket_uri` and write the primitives ``_write``, ``_upload``,
    ``_read``, ``_download``, ``_exists``, ``_names``, ``_remove`` and the conditional write
    :meth:`put_if_match` (each cloud's precondition and its refusal differ too much to share).
    """

    def __init__(self, conn_id: str, prefix: str = "") -> None:
        self.conn_id = conn_id
        self.prefix = prefix.strip("/")

    # -- the primitives a cloud writes -----------------------------------------------------

    @property
    def bucket_uri(self) -> str:
        """The bucket's address without a trailing slash (``s3://bucket``, a container URL)."""
        raise NotImplementedError

    def _write(self, name: str, data: bytes) -> None:
        """Write (overwrite) the object ``name`` in one atomic upload."""
        raise NotImplementedError

    def _upload(self, name: str, path: Path) -> None:
        """Upload the local file ``path`` as the object ``name`` (visible only when complete)."""
        raise NotImplementedError

    def _read(self, name: str) -> tuple[bytes, str]:
        """The object's bytes and the version of exactly these bytes; FileNotFoundError if missing."""
        raise NotImplementedError

    def _download(self, name: str, path: Path) -> None:
        """Download the object into the (existing, empty) file ``path``; FileNotFoundError if missing."""
        raise NotImplementedError

    def _exists(self, name: str) -> bool:
        """Tell whether the object exists."""
        raise NotImplementedError

    def _names(self, prefix: str) -> Iterable[str]:
        """The names of the objects whose name starts with ``prefix``."""
        raise NotImplementedError

    def _remove(self, name: str) -> None:
        """Delete the object; nothing when it does not exist."""
        raise NotImplementedError

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Write only if the object is at ``expected_version`` (see :class:`~providers.base.ObjectStore`)."""
        raise NotImplementedError

    # -- derived: the ObjectStore contract -------------------------------------------------

    def object_name(self, key: str) -> str:
        """Return the name of the object that holds ``key`` (the key under the store's prefix)."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """Return the object's address (``s3://bucket/prefix/key``)."""
        return f"{self.bucket_uri}/{self.object_name(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (overwrite) an object in one upload; return its URI."""
        self._write(self.object_name(key), data)
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        """Upload a local file (the object appears only when complete); return its URI."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no local file {path} to upload to {self.uri(key)}")
        self._upload(self.object_name(key), Path(path))
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        """Read an object. Raises FileNotFoundError if it does not exist."""
        return self.get_with_version(key)[0]

    def get_with_version(self, key: str) -> tuple[bytes, str]:
        """Read an object and its version (from the one response that carried the bytes)."""
        try:
            return self._read(self.object_name(key))
        except FileNotFoundError:
            raise self._missing(key) from None

    def get_file(self, key: str, path: Path) -> Path:
        """Download an object to ``path`` (through a temporary file, renamed when complete)."""
        name = self.object_name(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self._download(name, Path(tmp))
            os.replace(tmp, path)
        except FileNotFoundError:
            Path(tmp).unlink(missing_ok=True)
            raise self._missing(key) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def exists(self, key: str) -> bool:
        """Tell whether an object exists (one metadata request)."""
        return bool(self._exists(self.object_name(key)))

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix`` (a string prefix, as the clouds list), sorted."""
        if prefix:
            check_key(prefix.rstrip("/"))
        root = f"{self.prefix}/" if self.prefix else ""
        names = self._names(root + prefix)
        return sorted(n[len(root) :] for n in names if n.startswith(root) and not n.endswith("/"))

    def delete(self, key: str) -> None:
        """Delete an object if it exists."""
        self._remove(self.object_name(key))

    def _root(self) -> str:
        """The store's address: the bucket and the prefix (for messages)."""
        return f"{self.bucket_uri}/{self.prefix}" if self.prefix else self.bucket_uri

    def _missing(self, key: str) -> FileNotFoundError:
        return FileNotFoundError(f"no object {key!r} in {self._root()}")
