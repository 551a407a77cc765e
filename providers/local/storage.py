"""Storage on the local provider: a folder, with atomic writes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from providers.base import check_key

# a temporary file older than this is an orphan of a killed writer (a live write renames its
# temporary file within seconds of its last byte)
STALE_TEMP_SECONDS = 15 * 60


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

    def _remove_stale_temps(self, target: Path) -> None:
        """Delete temporary files a killed writer of ``target`` left behind (stale ones only)."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for orphan in target.parent.glob(f".{target.name}.*.tmp"):
            try:
                if orphan.stat().st_mtime < cutoff:
                    orphan.unlink(missing_ok=True)
            except FileNotFoundError:
                pass

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write an object atomically (removing stale temporary files of earlier killed writes)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.as_uri()

    def put_file(self, key: str, path: Path) -> str:
        """Copy a local file in atomically (removing stale temporary files of killed writes)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.as_uri()

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
        """Delete an object if it exists."""
        self.path(key).unlink(missing_ok=True)
