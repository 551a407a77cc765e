"""The endpoint's micro-batcher: concurrent requests share model calls, errors stay with their request."""

import asyncio
import threading
import time

import pytest

from apps.serving.batching import MicroBatcher


class Model:
    """Scores rows as their ``x`` doubled; records each call; fails on a row with ``bad``."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.calls: list[tuple[str, int]] = []
        self.seconds = seconds
        self.threads: set[str] = set()

    def __call__(self, model_name: str, rows: list[dict]) -> tuple[str, list[float]]:
        self.threads.add(threading.current_thread().name)
        self.calls.append((model_name, len(rows)))
        time.sleep(self.seconds)  # the model call: the next requests gather meanwhile
        if any(row.get("bad") for row in rows):
            raise ValueError("a bad row")
        return f"{model_name}-v1", [2.0 * row["x"] for row in rows]


def _run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_are_scored_together_and_answered_in_order():
    model = Model()
    batcher = MicroBatcher(model)

    async def main():
        first = asyncio.create_task(batcher.predict("churn", [{"x": 0}]))
        await asyncio.sleep(0.005)  # the first call is running: the next 30 gather behind it
        rest = [batcher.predict("churn", [{"x": i}, {"x": i + 0.5}]) for i in range(1, 31)]
        return await first, await asyncio.gather(*rest)

    first, rest = _run(main())
    batcher.close()
    assert first == ("churn-v1", [0.0])
    assert rest == [("churn-v1", [2.0 * i, 2.0 * i + 1.0]) for i in range(1, 31)]
    assert model.calls == [("churn", 1), ("churn", 60)]  # 31 requests, 2 model calls
    assert (batcher.batches, batcher.requests) == (2, 31)
    assert len(model.threads) == 1 and next(iter(model.threads)).startswith("scoring")


def test_a_lone_request_does_not_wait():
    model = Model(seconds=0.0)
    batcher = MicroBatcher(model)
    started = time.perf_counter()
    assert _run(batcher.predict("churn", [{"x": 1}])) == ("churn-v1", [2.0])
    assert time.perf_counter() - started < 0.5
    batcher.close()


def test_a_failing_request_fails_alone():
    model = Model()
    batcher = MicroBatcher(model)

    async def main():
        blocker = asyncio.create_task(batcher.predict("churn", [{"x": 0}]))
        await asyncio.sleep(0.005)
        tasks = [batcher.predict("churn", [{"x": i, "bad": i == 3}]) for i in range(1, 6)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await blocker
        return results

    results = _run(main())
    batcher.close()
    assert isinstance(results[2], ValueError)
    assert [r for i, r in enumerate(results) if i != 2] == [("churn-v1", [2.0 * i]) for i in (1, 2, 4, 5)]
    # the batch of 5 failed as a whole, then each request was scored alone
    assert model.calls == [("churn", 1), ("churn", 5)] + [("churn", 1)] * 5


def test_models_are_scored_separately_and_batches_are_bounded():
    model = Model()
    batcher = MicroBatcher(model, max_batch_rows=4)

    async def main():
        blocker = asyncio.create_task(batcher.predict("churn", [{"x": 0}]))
        await asyncio.sleep(0.005)
        tasks = [batcher.predict(name, [{"x": 1}, {"x": 2}]) for name in ("churn", "other", "churn", "churn")]
        results = await asyncio.gather(*tasks)
        await blocker
        return results

    results = _run(main())
    batcher.close()
    assert [r[0] for r in results] == ["churn-v1", "other-v1", "churn-v1", "churn-v1"]
    # at most 4 rows per batch: (churn, other) then (churn, churn); each batch one call per model
    assert model.calls == [("churn", 1), ("churn", 2), ("other", 2), ("churn", 4)]


def test_worker_init_runs_in_the_scoring_thread():
    seen = []
    batcher = MicroBatcher(
        Model(seconds=0.0), worker_init=lambda: seen.append(threading.current_thread().name)
    )
    _run(batcher.predict("churn", [{"x": 1}]))
    _run(batcher.predict("churn", [{"x": 1}]))
    batcher.close()
    assert len(seen) == 1 and seen[0].startswith("scoring")


@pytest.mark.parametrize("rows", [[], [{"x": 1}] * 3000])
def test_empty_and_oversized_requests_still_go_alone(rows):
    model = Model(seconds=0.0)
    batcher = MicroBatcher(model, max_batch_rows=2048)
    assert _run(batcher.predict("churn", rows)) == ("churn-v1", [2.0] * len(rows))
    batcher.close()
