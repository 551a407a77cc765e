"""The version register_model left in production travels to deploy and score in the same run.

If the alias moved meanwhile (a rollback, another run), deploy_model and batch_score refuse to
follow it silently: the run fails, naming both versions, and nothing is served or written.
The stage functions run directly on the local provider (no Airflow, no endpoint).
"""

from __future__ import annotations

import pytest
from helpers import free_port, seed_loop, write_config


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    config = write_config(
        tmp_path_factory.mktemp("travels"),
        local={"endpoint_port": free_port()},
        data={"rows_per_week": 400},
        model={"params": {"max_iter": 10}},
    )
    return seed_loop(config, ["2026-W01"])  # v1 registered, promoted and scored


def test_deploy_refuses_a_production_that_moved_since_register(ctx):
    from lifecycle.deploy import start_deploy
    from lifecycle.history import ProductionMovedError

    with pytest.raises(ProductionMovedError, match="is v1, but this run's register step left it at v7"):
        start_deploy(ctx, production_version="7")
    assert ctx.provider.endpoint.current(ctx.model_name) is None  # nothing rolled out


def test_score_refuses_a_production_that_moved_and_writes_nothing(ctx):
    from lifecycle.history import ProductionMovedError
    from lifecycle.score import score_week

    before = ctx.provider.warehouse.read_rows("predictions", {"week": ctx.week})
    with pytest.raises(ProductionMovedError, match="v7"):
        score_week(ctx, production_version="7")
    after = ctx.provider.warehouse.read_rows("predictions", {"week": ctx.week})
    assert len(after) == len(before) > 0


def test_score_with_the_version_that_travelled(ctx):
    from lifecycle.score import score_week

    assert score_week(ctx, production_version="1").model_version == "1"
