"""Where Airflow runs the lifecycle's tasks: their Celery queues and the training pool.

The ``[airflow]`` section of astro.toml applies the training vs inference hardware split to
Airflow's workers: ``train_model`` goes to the training queue (a worker on the training
machines serves it) and through a pool that caps how many training jobs run at once; every
other task goes to the default queue. LocalExecutor (``make airflow``) and ``dag.test()`` ignore
queues; CeleryExecutor (``make cluster-up``) routes by them.

Unlike the rest of astro.toml, this section is read while a DAG file is parsed: Airflow gives a
task its queue and pool before the task runs. So this module reads that section alone, with
tomllib and nothing else, and an absent settings file gives the defaults (the tasks themselves
then fail on it, naming it, when they load the settings).

``python -m core.routing pool`` prints the pool's name and slots, for ``airflow pools set``.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# what Celery and Airflow accept as a queue or pool name, without quoting
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


@dataclass(frozen=True)
class TaskRouting:
    """The ``[airflow]`` section: queues and the training pool."""

    default_queue: str = "default"
    training_queue: str = "training"
    training_pool: str = "training"
    training_pool_slots: int = 1


def task_routing(path: str | os.PathLike[str] | None = None) -> TaskRouting:
    """Read ``[airflow]`` of the settings file (``$MLOPS_CONFIG`` or astro.toml).

    Raises:
        ConfigError: the file is not TOML, or the section has an unknown key or a bad value.
    """
    config_path = Path(path or os.environ.get("MLOPS_CONFIG") or PROJECT_ROOT / "astro.toml")
    if not config_path.is_file():
        return TaskRouting()
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid TOML: {exc}") from None
    return parse_routing(raw.get("airflow", {}), config_path)


def parse_routing(values: Any, config_path: Path) -> TaskRouting:
    """Check an ``[airflow]`` table and build its :class:`TaskRouting`."""
    if not isinstance(values, dict):
        raise ConfigError(f"{config_path}: [airflow] must be a table")
    known = [f.name for f in fields(TaskRouting)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{config_path}: unknown key(s) {unknown} in [airflow]; known keys: {known}")
    routing = TaskRouting(**values)
    for name in ("default_queue", "training_queue", "training_pool"):
        value = getattr(routing, name)
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise ConfigError(
                f"{config_path}: [airflow] {name} = {value!r} must be a name of letters, digits, "
                "'_', '.' or '-' (e.g. 'training')"
            )
    slots = routing.training_pool_slots
    if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= 1000:
        raise ConfigError(
            f"{config_path}: [airflow] training_pool_slots = {slots!r} must be a whole number from 1 to 1000"
        )
    return routing


if __name__ == "__main__":
    if sys.argv[1:] != ["pool"]:
        sys.exit("usage: python -m core.routing pool   (prints the training pool's name and slots)")
    routing = task_routing()
    print(routing.training_pool, routing.training_pool_slots)
