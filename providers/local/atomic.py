"""Atomic file writes for the local provider: a reader, or a crash, never sees half a file.

A write goes to a temporary file beside its target (``.<name>.<random>.tmp``) that is renamed
into place. A writer killed with SIGKILL cannot remove its temporary file, so every write first
deletes the stale temporary files of earlier writes of the same target.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

# a temporary file older than this is an orphan of a killed writer (a live write renames its
# temporary file within seconds of its last byte)
STALE_TEMP_SECONDS = 15 * 60


def remove_stale_temps(target: Path) -> None:
    """Delete temporary files that killed writers of ``target`` left behind (stale ones only)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for orphan in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if orphan.stat().st_mtime < cutoff:
                orphan.unlink(missing_ok=True)
        except FileNotFoundError:
            pass


def _temp_beside(target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    return tmp


def write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    tmp = _temp_beside(target)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically."""
    tmp = _temp_beside(target)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
