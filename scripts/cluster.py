"""The production-like profile on one machine: PostgreSQL, Redis, CeleryExecutor, two workers.

``make cluster-up`` runs ``python scripts/cluster.py up`` and ``make cluster-down`` runs
``python scripts/cluster.py down``. Everything lives in a project-local folder (``.cluster/``)
and listens on 127.0.0.1 only:

- PostgreSQL (the machine's PostgreSQL 15) with the metadata database ``airflow`` in
  ``.cluster/postgres`` (kept between up and down);
- Redis (Debian's ``redis-server``), the Celery broker, in memory;
- ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with CeleryExecutor;
- two Celery workers: one serves the default queue, the other the training queue of astro.toml's
  ``[airflow]`` (core/routing.py), where ``train_model`` goes; the training pool that caps
  concurrent training jobs is created with its slots.

Each process runs in a process group of its own; their pids go to ``.cluster/pids.json`` and
``down`` stops them by pid (SIGTERM, SIGKILL after a grace period), then PostgreSQL.
``.cluster/env`` holds the environment for ``airflow`` commands against the profile
(``set -a; . .cluster/env; set +a``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
AIRFLOW = Path(sys.executable).parent / "airflow"
WORKER_CONCURRENCY = "2"


def cluster_env(folder: Path, ports: dict[str, int], config: Path | None) -> dict[str, str]:
    """The Airflow settings every component of the profile (and the CLI against it) shares."""
    home = folder / "airflow"
    database = f"postgresql+psycopg2://postgres@127.0.0.1:{ports['postgres']}/airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{ports['postgres']}/airflow",
        # the workers reach the Task Execution API on this api-server
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports['api']}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(ports["api"]),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports['api']}/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "PYTHONPATH": str(ROOT),
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_ENABLE_TELEMETRY": "false",
    }
    if config is not None:
        env["MLOPS_CONFIG"] = str(config)
    return env


def components(routing_queues: tuple[str, str], api_port: int) -> dict[str, list[str]]:
    """Each component's ``airflow`` arguments.

    The log servers are off: they bind every interface, and all components share this machine's
    log folder, which the api-server reads.
    """
    default_queue, training_queue = routing_queues
    return {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(api_port)],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],
        "worker-default": ["celery", "worker", "--queues", default_queue, "--celery-hostname",
                           "default@%h", "--concurrency", WORKER_CONCURRENCY, "--skip-serve-logs"],
        "worker-training": ["celery", "worker", "--queues", training_queue, "--celery-hostname",
                            "training@%h", "--concurrency", WORKER_CONCURRENCY, "--skip-serve-logs"],
    }  # fmt: skip


def up(folder: Path, ports: dict[str, int], config: Path | None, timeout: float = 300) -> dict[str, int]:
    """Start the profile; return the pids of its processes (also in ``folder/pids.json``).

    Raises:
        SystemExit: it is already up, a prerequisite is missing, or a component failed to start.
    """
    from core.routing import task_routing

    if _running(folder):
        raise SystemExit(f"the cluster in {folder} is already up: run `make cluster-down` first")
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed: run `make redis` (apt-get install redis-server)")
    routing = task_routing(config)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **cluster_env(folder, ports, config)}
    env.pop("AIRFLOW_CONFIG", None)
    (folder / "env").write_text("".join(f"{k}={v}\n" for k, v in cluster_env(folder, ports, config).items()))
    pids: dict[str, int] = {}
    try:
        _start_postgres(folder, ports["postgres"])
        pids["redis"] = _spawn(
            folder, "redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(ports["redis"]),
                              "--save", "", "--appendonly", "no", "--dir", str(folder / "logs")], env,
        )  # fmt: skip
        _save(folder, pids)
        _airflow(env, "db", "migrate")
        _airflow(
            env, "pools", "set", routing.training_pool, str(routing.training_pool_slots), "training jobs"
        )
        for name, args in components((routing.default_queue, routing.training_queue), ports["api"]).items():
            pids[name] = _spawn(folder, name, [str(AIRFLOW), *args], env)
            _save(folder, pids)
        _wait_healthy(folder, pids, ports["api"], timeout)
    except BaseException:
        down(folder)
        raise
    return pids


def down(folder: Path, grace: float = 20) -> None:
    """Stop every process of ``folder/pids.json`` by pid, then PostgreSQL."""
    pids_file = folder / "pids.json"
    if pids_file.exists():
        stop_groups(list(json.loads(pids_file.read_text()).values()), grace)
        pids_file.unlink()
    data = folder / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        _as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], check=False
        )


def stop_groups(pids: list[int], grace: float = 20) -> None:
    """SIGTERM each pid's process group and its descendants; SIGKILL what is left after ``grace`` s.

    Descendants are signalled one by one too: Airflow's task processes run in process groups of
    their own.
    """
    import psutil

    doomed: list[psutil.Process] = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            doomed += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    _signal_all(pids, doomed, signal.SIGTERM)
    _, alive = psutil.wait_procs(doomed, timeout=grace)
    _signal_all(pids, alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


def _signal_all(groups: list[int], processes: list, sig: signal.Signals) -> None:
    """Send ``sig`` to each process group of ``groups`` and to each of ``processes``."""
    import psutil

    for pid in groups:
        _signal_group(pid, sig)
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _running(folder: Path) -> bool:
    pids_file = folder / "pids.json"
    if not pids_file.exists():
        return False
    import psutil

    return any(psutil.pid_exists(pid) for pid in json.loads(pids_file.read_text()).values())


def _save(folder: Path, pids: dict[str, int]) -> None:
    (folder / "pids.json").write_text(json.dumps(pids, indent=2))


def _spawn(folder: Path, name: str, command: list[str], env: dict[str, str]) -> int:
    """Start ``command`` in a process group of its own, logging to ``folder/logs/<name>.log``."""
    with open(folder / "logs" / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return process.pid


def _airflow(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([str(AIRFLOW), *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(
            f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _as_postgres(command: list[str], check: bool = True) -> None:
    """Run a PostgreSQL command as the postgres user when running as root (initdb refuses root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        program = next(Path(part).name for part in command if part.startswith(str(PG_BIN)))
        raise SystemExit(f"{program} failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")


def _start_postgres(folder: Path, port: int) -> None:
    """Create the cluster the first time, start it, and create the ``airflow`` database if missing."""
    if not PG_BIN.is_dir():
        raise SystemExit(f"PostgreSQL 15 is not installed ({PG_BIN}): apt-get install postgresql-15")
    pg = folder / "postgres"
    pg.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
    if not (pg / "data" / "PG_VERSION").exists():
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(pg / "data"), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8"])  # fmt: skip
    _as_postgres(
        [str(PG_BIN / "pg_ctl"), "-D", str(pg / "data"), "-l", str(pg / "server.log"), "-w", "-t", "60",
         "-o", f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pg} "
         "-c max_connections=300", "start"]
    )  # fmt: skip
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as con:
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'").fetchone():
            con.execute("CREATE DATABASE airflow")


def _wait_healthy(folder: Path, pids: dict[str, int], api_port: int, timeout: float) -> None:
    """Wait for a healthy scheduler, dag-processor, triggerer and both workers' "ready"."""
    import httpx
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                log = (folder / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-30:]
                raise SystemExit(f"{name} exited at start-up; the end of its log:\n" + "\n".join(log))
        try:
            health = httpx.get(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2).json()
            parts = ("scheduler", "dag_processor", "triggerer")
            workers = [name for name in pids if name.startswith("worker-")]
            if all(health.get(part, {}).get("status") == "healthy" for part in parts) and all(
                " ready." in (folder / "logs" / f"{name}.log").read_text(errors="replace") for name in workers
            ):
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(2)
    raise SystemExit(f"the cluster was not healthy in {timeout:.0f} s: see {folder / 'logs'}")


def main(argv: list[str] | None = None) -> None:
    """``up`` or ``down`` the profile (``--help`` lists the options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument(
        "--folder", type=Path, default=ROOT / ".cluster", help="where it all lives (.cluster)"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="settings file (default: MLOPS_CONFIG or astro.toml)"
    )
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--postgres-port", type=int, default=5433)
    parser.add_argument("--redis-port", type=int, default=6380)
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    if args.action == "down":
        down(folder)
        print(f"cluster in {folder} stopped")
        return
    ports = {"api": args.api_port, "postgres": args.postgres_port, "redis": args.redis_port}
    started = time.monotonic()
    pids = up(folder, ports, args.config)
    print(
        f"cluster up in {time.monotonic() - started:.0f} s: http://127.0.0.1:{args.api_port} "
        f"(admin; password in {folder / 'airflow' / 'simple_auth_manager_passwords.json.generated'})\n"
        f"processes: {pids}\nlogs: {folder / 'logs'}; CLI: set -a; . {folder / 'env'}; set +a\n"
        "stop it with: make cluster-down"
    )


if __name__ == "__main__":
    main()
