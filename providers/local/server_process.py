"""The local endpoint server as a detached process of the data folder, started when a call needs it.

``make airflow`` (or ``airflow dags test``) alone runs the pipeline: when ``deploy_model``
calls the local endpoint and nothing answers, :meth:`EndpointProcess.start` starts
``python -m apps.serving.app`` in a session of its own (so it outlives the Airflow task that
started it), writes its pid to ``<root>/endpoint/server.pid`` and its output to
``<root>/endpoint/server.log``, and waits until ``/health`` answers. A server that still runs
from an earlier call is reused. A file lock keeps two tasks from starting two servers.

    python -m providers.local.server_process status|start|stop|serve [--config astro.toml ...]

``make serve-stop`` stops the servers of the project's settings and of the demo's
(``.mlops-demo/astro.toml``), each by its own pid file; ``make serve`` stops the project's, then
serves its folder on its port in the foreground (``serve``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import MLOpsError

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


class EndpointStartError(MLOpsError):
    """The endpoint server could not be started (its log says why)."""


class EndpointProcess:
    """The endpoint server serving ``<folder>/deployments`` on ``host:port``.

    Args:
        folder: the local provider's endpoint folder (``<root>/endpoint``).
        host: the address the server binds.
        port: its port.
        config: the settings file whose dataset spec the server's requests follow.
    """

    def __init__(self, folder: Path, host: str, port: int, config: Path) -> None:
        self.folder = Path(folder)
        self.host, self.port, self.config = host, port, Path(config)
        self.url = f"http://{host}:{port}"
        self.pid_file = self.folder / "server.pid"
        self.log_file = self.folder / "server.log"

    def answers(self) -> bool:
        """True when the endpoint of this folder answers ``/health`` on the server's address.

        Raises:
            EndpointStartError: the endpoint of another data folder answers there.
        """
        import httpx

        try:
            response = httpx.get(f"{self.url}/health", timeout=2)
        except httpx.TransportError:
            return False
        if response.status_code != 200:
            return False
        served = response.json().get("deployments")
        if served is not None and Path(served) != (self.folder / "deployments").resolve():
            raise EndpointStartError(
                f"{self.url} serves the models of another data folder ({served}), not "
                f"{self.folder / 'deployments'}: stop that server (`make serve-stop` with its settings) "
                f"or give these settings ({self.config}) another [local] endpoint_port"
            )
        return True

    def pid(self) -> int | None:
        """The pid of the server this folder started, if that process still runs."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) and _is_our_server(pid, self.folder) else None

    def start(self, timeout: float = 60) -> int | None:
        """Make the server answer: reuse a running one, or start it and wait for ``/health``.

        Returns:
            The pid of the server this folder runs, or None when another process (``make
            serve``) answers on the address.

        Raises:
            EndpointStartError: it exited or did not answer within ``timeout`` seconds; the
                message quotes the end of its log.
        """
        with self._lock():
            if self.answers():
                return self.pid()
            pid = self.pid()
            if pid is None:
                pid = self._spawn()
                log.warning(
                    "Nothing answered at %s: started the local endpoint server (pid %d, log %s, "
                    "stop it with `%s`)",
                    self.url,
                    pid,
                    self.log_file,
                    self.stop_command(),
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.answers():
                    return pid
                if not _alive(pid):
                    self.pid_file.unlink(missing_ok=True)
                    raise EndpointStartError(
                        f"the local endpoint server (pid {pid}) exited before answering at {self.url} "
                        f"(port {self.port} taken? set [local] endpoint_port in {self.config}); "
                        f"the end of {self.log_file}:\n{self._log_tail()}"
                    )
                time.sleep(0.3)
            raise EndpointStartError(
                f"the local endpoint server (pid {pid}) did not answer at {self.url} within {timeout:.0f} s; "
                f"the end of {self.log_file}:\n{self._log_tail()}"
            )

    def stop(self, grace: float = 10) -> int | None:
        """Stop the server this folder started (SIGTERM, SIGKILL after ``grace`` s); return its pid."""
        with self._lock():
            pid = self.pid()
            if pid is not None:
                _terminate(pid, grace)
            self.pid_file.unlink(missing_ok=True)
            return pid

    def stop_command(self) -> str:
        """The command that stops this server."""
        from demo import DEMO_CONFIG

        if self.config.resolve() in (PROJECT_ROOT / "astro.toml", DEMO_CONFIG):
            return "make serve-stop"  # it stops the demo's server too
        return f"python -m providers.local.server_process stop --config {self.config}"

    def _spawn(self) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        deployments = self.folder / "deployments"
        deployments.mkdir(exist_ok=True)
        with open(self.log_file, "ab") as output:
            process = subprocess.Popen(
                server_command(self),
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # its own session: the server outlives the task that started it, and a signal
                # sent to that task's process group does not reach it
                start_new_session=True,
                close_fds=True,
            )  # fmt: skip
        self.pid_file.write_text(f"{process.pid}\n")
        return process.pid

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "server.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a child of ours that exited stays a zombie until reaped: not alive
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def _is_our_server(pid: int, folder: Path) -> bool:
    """True when ``pid`` runs the endpoint app on this folder.

    A pid file can outlive its process, and the pid be reused by another.
    """
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    return b"apps.serving.app" in command and str(folder / "deployments").encode() in command


def _terminate(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.05)


def from_settings(settings) -> EndpointProcess:  # noqa: ANN001 - core.config.Settings
    """The endpoint process of the local provider the settings describe."""
    from providers.local import local_root

    section = settings.provider_sections.get("local", {})
    return EndpointProcess(
        local_root(settings) / "endpoint",
        host=str(section.get("endpoint_host", "127.0.0.1")),
        port=int(section.get("endpoint_port", 8765)),
        config=settings.config_path,
    )


def main(argv: list[str] | None = None) -> int:
    """``status``, ``start``, ``stop`` or ``serve`` the local endpoint server of settings files.

    ``--config`` may be given more than once (``stop`` and ``status`` act on each file in turn;
    a file named twice counts once); none means ``$MLOPS_CONFIG`` or astro.toml.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["status", "start", "stop", "serve"])
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=None,
        help="settings file (default: $MLOPS_CONFIG or astro.toml); repeat it to act on several",
    )
    args = parser.parse_args(argv)
    from core.config import load_settings

    paths = list(dict.fromkeys(path.resolve() for path in args.config)) if args.config else [None]
    if args.action in ("start", "serve") and len(paths) > 1:
        parser.error(f"{args.action} takes one --config")
    code = 0
    for path in paths:
        server = from_settings(load_settings(path))
        try:
            code = max(code, _act(server, args.action))
        except EndpointStartError as exc:
            print(exc, file=sys.stderr)
            code = 1
    return code


def _act(server: EndpointProcess, action: str) -> int:
    which = f"of {_shown(server.config)} ({server.url}, data folder {_shown(server.folder)})"
    if action == "stop":
        pid = server.stop()
        print(
            f"stopped the local endpoint server {which}, pid {pid}"
            if pid
            else f"no endpoint server {which} runs"
        )
        return 0
    if action == "serve":
        _serve(server, which)
    if action == "start":
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        pid = server.start()
        where = f"pid {pid}, log {server.log_file}" if pid else "not started from this folder"
        print(f"the local endpoint answers at {server.url} ({where})")
        return 0
    pid, answers = server.pid(), server.answers()
    where = f"pid {pid}, log {server.log_file}" if pid else "not started from this folder"
    print(f"{server.url}: {'answers' if answers else 'does not answer'} ({where})")
    return 0 if answers else 1


def _serve(server: EndpointProcess, which: str) -> None:
    """Serve the folder in the foreground: this process becomes the server (Ctrl-C reaches it)."""
    pid = server.stop()  # a server a deploy started in the background holds the port
    if pid:
        print(f"stopped the background endpoint server {which}, pid {pid}")
    deployments = server.folder / "deployments"
    deployments.mkdir(parents=True, exist_ok=True)
    print(f"serving {deployments} on {server.url} (settings {_shown(server.config)}); Ctrl-C stops it")
    sys.stdout.flush()
    os.execv(sys.executable, server_command(server))


def server_command(server: EndpointProcess) -> list[str]:
    """The command line of the endpoint server of ``server``'s folder, address and settings."""
    return [sys.executable, "-m", "apps.serving.app", "--deployments", str(server.folder / "deployments"),
            "--host", server.host, "--port", str(server.port), "--config", str(server.config)]  # fmt: skip


def _shown(path: Path) -> str:
    """A path relative to the project when it is inside it (as the user typed it), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
