"""Storage on the local provider: a folder, with atomic writes and conditional writes.

A conditional write (``put_if_match``) compares the object's version (the sha256 of its bytes)
and renames the new bytes into place while holding an exclusive ``fcntl.flock`` on a lock file
beside the object (``.<name>.lock``, hidden from listings): the check and the write are one
step for every thread and process on this machine. Plain writes of a key that has a lock file
take the same lock, so they cannot slip between another writer's check and its rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from providers.base import PreconditionFailedError, check_key
from providers.local import atomic


class LocalObjectStore:
    """Objects are files under ``root``.

    A write goes to a temporary file that is renamed into place, so a reader (or a crash) never
    sees half an object.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Return the local file that holds ``key``."""
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        """Return ``file://`` URI of ``key``."""
        return self.path(key).as_uri()

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write an object atomically (removing stale temporary files of earlier killed writes)."""
        target = self.path(key)
        with self._lock_if_conditional(target):
            atomic.write_bytes(target, data)
        return target.as_uri()

    def put_file(self, key: str, path: Path) -> str:
        """Copy a local file in atomically (removing stale temporary files of killed writes)."""
        target = self.path(key)
        with self._lock_if_conditional(target):
            atomic.copy_file(Path(path), target)
        return target.as_uri()

    def get_with_version(self, key: str) -> tuple[bytes, str]:
        """Read an object and its version (the sha256 of the bytes read)."""
        data = self.get_bytes(key)  # one read of a file that is only ever renamed into place
        return data, _version(data)

    def put_if_match(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Write only if the object is at ``expected_version`` (None: only if it is missing).

        Raises:
            PreconditionFailedError: the object is at another version, missing, or exists.
        """
        target = self.path(key)
        with self._lock(target):
            try:
                current: str | None = _version(target.read_bytes())
            except FileNotFoundError:
                current = None
            if current != expected_version:
                raise PreconditionFailedError(
                    f"{self.uri(key)} is at version {current or '(missing)'}, not "
                    f"{expected_version or '(missing)'}: another writer changed it; read it again"
                )
            atomic.write_bytes(target, data)
        return _version(data)

    def get_bytes(self, key: str) -> bytes:
        """Read an object."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in {self.root}")
        return path.read_bytes()

    def get_file(self, key: str, path: Path) -> Path:
        """Copy an object to a local path."""
        source = self.path(key)
        if not source.is_file():
            raise FileNotFoundError(f"no object {key!r} in {self.root}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        return Path(path)

    def exists(self, key: str) -> bool:
        """Tell whether an object exists."""
        return self.path(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix`` (temporary files excluded), sorted."""
        base = self.root / prefix if prefix else self.root
        if prefix:
            check_key(prefix.rstrip("/"))
        # a string prefix, as in S3/GCS: 'a' also matches 'ab/..', so walk from the prefix's folder
        start = base if not prefix or prefix.endswith("/") else base.parent
        if not start.exists():
            return []
        keys = []
        for path in start.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Delete an object if it exists (its lock file stays: a waiting writer may hold it)."""
        target = self.path(key)
        with self._lock_if_conditional(target):
            target.unlink(missing_ok=True)

    @staticmethod
    def _lock_path(target: Path) -> Path:
        return target.with_name(f".{target.name}.lock")

    @contextlib.contextmanager
    def _lock(self, target: Path) -> Iterator[None]:
        """Hold the exclusive lock of ``target`` (threads and processes alike wait for it).

        Each call opens the lock file anew: flock locks belong to an open file description, so
        two threads of one process exclude each other too. The lock is released when the file
        is closed, also when the holder is killed.
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path(target), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _lock_if_conditional(self, target: Path) -> contextlib.AbstractContextManager[None]:
        """The lock of a key that conditional writes use (it has a lock file), else nothing."""
        return self._lock(target) if self._lock_path(target).exists() else contextlib.nullcontext()


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
