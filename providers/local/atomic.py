"""Atomic file writes for the local provider: a reader, or a crash, never sees half a file.

A write goes to a temporary file beside its target (``.<name>.<pid>.<random>.tmp``) that is
renamed into place. A writer killed with SIGKILL cannot remove its temporary file, so every write
first deletes the orphans of earlier writes of the same target: those whose writer process is
gone (the local provider's writers all run on this machine), and any older than
``STALE_TEMP_SECONDS`` (the writer's pid may have been reused).
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


def _writer_is_gone(temp: Path, target: Path) -> bool:
    """Tell whether the process that created ``temp`` has exited (False when unsure)."""
    pid = temp.name[len(target.name) + 2 :].split(".", 1)[0]
    if not pid.isdigit():
        return False  # not named by this module: only the age rule applies
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def remove_stale_temps(target: Path) -> None:
    """Delete temporary files that killed writers of ``target`` left behind.

    A live write's temporary file is kept: its writer is still running and young.
    """
    cutoff = time.time() - STALE_TEMP_SECONDS
    for orphan in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if _writer_is_gone(orphan, target) or orphan.stat().st_mtime < cutoff:
                orphan.unlink(missing_ok=True)
        except FileNotFoundError:
            pass


def temp_beside(target: Path) -> str:
    """Create an empty temporary file for a write of ``target``, beside it; return its path.

    The orphans of earlier writes of ``target`` are removed first (see the module docstring);
    the caller removes (or renames) the file it got.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    return tmp


def write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    tmp = temp_beside(target)
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
    tmp = temp_beside(target)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
