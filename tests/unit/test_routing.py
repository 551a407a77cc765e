"""astro.toml's [airflow] section: the tasks' queues and the training pool (core/routing.py)."""

from __future__ import annotations

import pytest
from helpers import write_config

from core.config import load_settings
from core.errors import ConfigError
from core.routing import TaskRouting, task_routing


def test_the_shipped_settings() -> None:
    assert task_routing() == TaskRouting("default", "training", "training", 1)


def test_a_missing_file_gives_the_defaults(tmp_path) -> None:
    # the tasks name the missing file when they load the settings; parsing must not break on it
    assert task_routing(tmp_path / "absent.toml") == TaskRouting()


def test_a_settings_file_of_its_own(tmp_path) -> None:
    config = write_config(tmp_path, airflow={"training_queue": "gpu-nodes", "training_pool_slots": 3})
    assert task_routing(config) == TaskRouting("default", "gpu-nodes", "training", 3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"training_queue": ""}, r"\[airflow\] training_queue = '' must be a name"),
        ({"default_queue": "two words"}, r"\[airflow\] default_queue = 'two words' must be a name"),
        ({"training_pool": 7}, r"\[airflow\] training_pool = 7 must be a name"),
        ({"training_pool_slots": 0}, r"training_pool_slots = 0 must be a whole number from 1 to 1000"),
        ({"training_pool_slots": True}, r"training_pool_slots = True must be a whole number"),
        ({"queue": "x"}, r"unknown key\(s\) \['queue'\] in \[airflow\]; known keys: \['default_queue'"),
    ],
)
def test_bad_values_name_the_key_and_what_to_do(tmp_path, values, message) -> None:
    config = write_config(tmp_path, airflow=values)
    with pytest.raises(ConfigError, match=message):
        task_routing(config)
    with pytest.raises(ConfigError, match=message):  # and a task loading the settings says the same
        load_settings(config)
