import os
import time
from pathlib import Path

import pytest

from providers.base import ObjectStore
from providers.local.storage import LocalObjectStore


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "root")


def _all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_is_an_object_store(store):
    assert isinstance(store, ObjectStore)
    assert store.root.is_dir()


def test_put_get_bytes(store):
    uri = store.put_bytes("raw/week=2026-W05/data.parquet", b"\x00hello\xff")
    assert uri == (store.root / "raw/week=2026-W05/data.parquet").as_uri()
    assert uri.startswith("file://")
    assert store.get_bytes("raw/week=2026-W05/data.parquet") == b"\x00hello\xff"
    assert store.exists("raw/week=2026-W05/data.parquet")
    assert store.uri("raw/week=2026-W05/data.parquet") == uri
    assert store.put_bytes("empty", b"") and store.get_bytes("empty") == b""


def test_overwrite(store):
    store.put_bytes("a/b.txt", b"first version, longer")
    store.put_bytes("a/b.txt", b"second")
    assert store.get_bytes("a/b.txt") == b"second"
    assert _all_files(store.root) == ["a/b.txt"]  # no temp file left behind


def test_put_get_file(store, tmp_path):
    source = tmp_path / "model.joblib"
    source.write_bytes(os.urandom(100_000))
    uri = store.put_file("models/v1/model.joblib", source)
    assert uri == store.uri("models/v1/model.joblib")
    target = store.get_file("models/v1/model.joblib", tmp_path / "out" / "deep" / "copy.joblib")
    assert target == tmp_path / "out" / "deep" / "copy.joblib"
    assert target.read_bytes() == source.read_bytes()
    source.write_bytes(b"changed")
    store.put_file("models/v1/model.joblib", source)
    assert store.get_bytes("models/v1/model.joblib") == b"changed"
    assert _all_files(store.root) == ["models/v1/model.joblib"]


def test_missing_objects(store, tmp_path):
    assert not store.exists("nothing/here")
    with pytest.raises(FileNotFoundError, match="nothing/here"):
        store.get_bytes("nothing/here")
    with pytest.raises(FileNotFoundError):
        store.get_file("nothing/here", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    store.put_bytes("dir/file", b"x")
    assert not store.exists("dir")  # a "directory" is not an object
    with pytest.raises(FileNotFoundError):
        store.get_bytes("dir")


def test_list_keys(store):
    for key in ["b/2", "a/1", "a/sub/3", "ab/4", "c"]:
        store.put_bytes(key, key.encode())
    assert store.list_keys() == ["a/1", "a/sub/3", "ab/4", "b/2", "c"]
    assert store.list_keys("a/") == ["a/1", "a/sub/3"]
    assert store.list_keys("a") == ["a/1", "a/sub/3", "ab/4"]  # a plain string prefix
    assert store.list_keys("a/sub") == ["a/sub/3"]
    assert store.list_keys("b/2") == ["b/2"]
    assert store.list_keys("missing/") == []
    assert store.list_keys("missing/deeper/") == []
    assert store.list_keys("a/s") == ["a/sub/3"]


def test_list_keys_never_lists_temporary_dot_files(store):
    store.put_bytes("raw/data.parquet", b"x")
    (store.root / "raw" / ".data.parquet.abc123.tmp").write_bytes(b"half")
    (store.root / ".hidden").write_bytes(b"h")
    assert store.list_keys() == ["raw/data.parquet"]
    assert store.list_keys("raw/") == ["raw/data.parquet"]


def test_a_dead_writers_temp_file_is_removed_by_the_next_write(store):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    folder = store.root / "raw"
    folder.mkdir(parents=True)
    orphan = folder / f".data.parquet.{dead_pid}.x1.tmp"  # its writer has exited
    live = folder / f".data.parquet.{os.getpid()}.x2.tmp"  # a write in progress in a live process
    foreign = folder / ".data.parquet.abc.tmp"  # not ours to judge by pid: young, kept
    for path in (orphan, live, foreign):
        path.write_bytes(b"half")
    store.put_bytes("raw/data.parquet", b"whole")
    assert not orphan.exists()
    assert live.exists() and foreign.exists()
    old = time.time() - 3600  # any temp file older than the limit is an orphan
    os.utime(live, (old, old))
    store.put_bytes("raw/data.parquet", b"whole")
    assert not live.exists() and foreign.exists()
    assert store.get_bytes("raw/data.parquet") == b"whole"


def test_delete(store):
    store.put_bytes("x/y", b"1")
    store.delete("x/y")
    assert not store.exists("x/y")
    assert store.list_keys() == []
    store.delete("x/y")  # deleting again is fine


BAD_KEYS = [
    "",
    "..",
    "../escape",
    "a/../../escape",
    "a/./b",
    "./a",
    "/etc/passwd",
    "/abs",
    "a//b",
    "a/",
    "/",
    "a\\..\\b",
    "a b",
    "a\nb",
    "raw/x.parquet\n",
    "a?b",
    "a*b",
    "a:b",
    "~/x",
    "$HOME/x",
    "a/\x00b",
    "caf\u00e9",
    "a;rm -rf",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_refused(tmp_path, key):
    root = tmp_path / "root"
    store = LocalObjectStore(root)
    before = _all_files(tmp_path)
    for call in (
        lambda: store.put_bytes(key, b"payload"),
        lambda: store.put_file(key, Path(__file__)),
        lambda: store.get_bytes(key),
        lambda: store.get_file(key, tmp_path / "out"),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.uri(key),
    ):
        with pytest.raises(ValueError, match="not a safe relative key"):
            call()
    assert _all_files(tmp_path) == before  # nothing written anywhere
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("prefix", ["../", "../../etc", "/etc/", "a/../.."])
def test_list_keys_refuses_unsafe_prefixes(store, prefix):
    with pytest.raises(ValueError):
        store.list_keys(prefix)


def test_non_string_keys_are_refused(store):
    with pytest.raises(ValueError):
        store.put_bytes(None, b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.put_bytes(Path("a/b"), b"x")  # type: ignore[arg-type]


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_object(store):
    store.put_bytes("models/model.joblib", b"old")
    with pytest.raises(TypeError):
        store.put_bytes("models/model.joblib", object())  # type: ignore[arg-type]
    assert store.get_bytes("models/model.joblib") == b"old"
    assert _all_files(store.root) == ["models/model.joblib"]


def test_failed_rename_leaves_no_temp_file(store, tmp_path, monkeypatch):
    store.put_bytes("a/obj", b"old")
    source = tmp_path / "src"
    source.write_bytes(b"new")

    def broken_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        store.put_bytes("a/obj", b"new")
    with pytest.raises(OSError, match="rename failed"):
        store.put_bytes("a/new-obj", b"new")
    with pytest.raises(OSError, match="rename failed"):
        store.put_file("a/obj", source)
    monkeypatch.undo()
    assert store.get_bytes("a/obj") == b"old"
    assert not store.exists("a/new-obj")
    assert _all_files(store.root) == ["a/obj"]


def test_put_file_of_a_missing_source_leaves_nothing(store, tmp_path):
    with pytest.raises(FileNotFoundError):
        store.put_file("a/obj", tmp_path / "does-not-exist")
    assert not store.exists("a/obj")
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_interrupted_write_leaves_no_partial_object(store, monkeypatch):
    """A KeyboardInterrupt (or any BaseException) during the write also cleans up."""
    real_fsync = os.fsync

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.put_bytes("big/object", b"x" * 1_000_000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not store.exists("big/object")
    assert _all_files(store.root) == []


# Each writer is a fresh interpreter: a fork of this process would copy the threads' locks of
# whatever earlier tests left running (stand-in servers, SDK pools), and a child can then wait on a
# lock no thread will release - it hung CI once.
_INCREMENT = """
import os
import sys
import time
from pathlib import Path
from providers.base import PreconditionFailedError
from providers.local.storage import LocalObjectStore

store, refused = LocalObjectStore(Path(sys.argv[1])), 0
signals = Path(sys.argv[3])
(signals / f"ready-{os.getpid()}").touch()
while not (signals / "go").exists():  # start together: interpreters take ~0.5 s each to start
    time.sleep(0.001)
for _ in range(int(sys.argv[2])):
    while True:
        data, version = store.get_with_version("counter")
        try:
            store.put_if_match("counter", str(int(data) + 1).encode(), version)
            break
        except PreconditionFailedError:
            refused += 1
print(refused)
"""


def test_conditional_writes_are_atomic_across_processes(store, tmp_path):
    """Processes (not threads: each its own file descriptors and locks) never lose an update."""
    import subprocess
    import sys

    store.put_if_match("counter", b"0", None)
    processes, times = 4, 300
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _INCREMENT, str(store.root), str(times), str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < processes:  # every writer waits for the go
            assert all(w.poll() is None for w in writers) and time.monotonic() < deadline
            time.sleep(0.02)
        (tmp_path / "go").touch()
        refused = [int(writer.communicate(timeout=120)[0]) for writer in writers]
    finally:
        for writer in writers:
            writer.kill()
    assert [writer.returncode for writer in writers] == [0] * processes
    assert int(store.get_bytes("counter")) == processes * times
    assert sum(refused) > 0, "the writers never overlapped: the test proves nothing"
    assert store.list_keys() == ["counter"]
    assert _all_files(store.root) == [".counter.lock", "counter"]  # no temporary file left


def test_a_killed_lock_holder_does_not_block_the_next_writer(store, tmp_path):
    """flock is released by the kernel when its holder dies: no stale lock to clean up."""
    import signal
    import subprocess
    import sys

    version = store.put_if_match("doc", b"v1", None)
    ready = tmp_path / "locked"
    child = subprocess.Popen(
        [
            sys.executable, "-c",
            "import fcntl, os, pathlib, sys, time\n"
            f"fd = os.open({str(store.root / '.doc.lock')!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "time.sleep(60)\n",
        ]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert store.put_if_match("doc", b"v2", version)
    assert store.get_bytes("doc") == b"v2"
