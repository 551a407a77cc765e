"""Storage on the local provider: a folder, with atomic writes."""

from __future__ import annotations

import shutil
from pathlib import Path

from providers.base import check_key
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
        atomic.write_bytes(target, data)
        return target.as_uri()

    def put_file(self, key: str, path: Path) -> str:
        """Copy a local file in atomically (removing stale temporary files of killed writes)."""
        target = self.path(key)
        atomic.copy_file(Path(path), target)
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
