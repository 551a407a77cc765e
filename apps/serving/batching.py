"""Micro-batching for the online endpoint: concurrent requests share one model call.

A model call has a fixed cost that dwarfs its per-row cost: when this was written one row took
~7 ms (building the pandas frames, the feature frame, scikit-learn's input checks) and 50 rows
~6 ms; with the request path built on numpy and the trees walked at once (core/ml/forest.py) one
row takes ~0.3 ms, and every call still pays a hand-off between threads. So the endpoint does
not score each request on its own. Requests wait in a queue;
one worker thread scores everything that is waiting in one call, and while it does, the next
requests queue up for the following call. Nothing waits on a timer: a request that finds the
worker idle is scored at once, so a lone request pays no extra latency, and under load the
batches grow by themselves to what the model scores in the time of one call.

A batch that fails is scored again request by request, so a request that breaks the model call
only fails itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("apps.serving")

#: the most rows one model call takes (a single request of more rows still goes alone)
MAX_BATCH_ROWS = 2048

# score(model_name, rows) -> (what scored them, one probability per row); runs in the worker
ScoreFunction = Callable[[str, list[dict[str, Any]]], tuple[Any, list[float]]]


@dataclass
class _Waiting:
    model_name: str
    rows: list[dict[str, Any]]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collects concurrent requests and scores them together in one worker thread.

    Args:
        score: called in the worker thread with a model name and the rows of every waiting
            request for that model; returns what scored them (e.g. the served version) and one
            probability per row, in order. An exception it raises reaches the request(s) whose
            rows it was scoring.
        max_batch_rows: the most rows put in one call.
        worker_init: called once in the worker thread before its first call (e.g. to limit
            OpenMP threads, a per-thread setting).
    """

    def __init__(
        self,
        score: ScoreFunction,
        max_batch_rows: int = MAX_BATCH_ROWS,
        worker_init: Callable[[], None] | None = None,
    ) -> None:
        self._score = score
        self._max_rows = max_batch_rows
        self._queue: deque[_Waiting] = deque()
        self._worker: asyncio.Task | None = None
        # one thread: one model call at a time is what lets the next batch gather meanwhile
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="scoring", initializer=worker_init
        )
        self.batches = 0
        self.requests = 0

    async def predict(self, model_name: str, rows: list[dict[str, Any]]) -> tuple[Any, np.ndarray]:
        """Score ``rows`` with ``model_name``'s served model, batched with concurrent requests.

        Returns:
            What ``score`` returned for the batch, and this request's rows of its predictions
            (``TrainedModel.predict_records``), in order.
        """
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(model_name, rows, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    def run_in_worker(self, function: Callable[[], Any]) -> asyncio.Future:
        """Run ``function`` in the scoring thread, after the calls already queued there."""
        return asyncio.get_running_loop().run_in_executor(self._executor, function)

    def close(self) -> None:
        """Stop the worker thread (requests still queued are not scored)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _drain(self) -> None:
        """Score what is waiting, batch after batch, until the queue is empty."""
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._take()
            by_model: dict[str, list[_Waiting]] = {}
            for waiting in batch:
                by_model.setdefault(waiting.model_name, []).append(waiting)
            for model_name, group in by_model.items():
                results = await loop.run_in_executor(self._executor, self._score_group, model_name, group)
                for waiting, result in zip(group, results, strict=True):
                    if waiting.future.done():  # the client went away
                        continue
                    if isinstance(result, BaseException):
                        waiting.future.set_exception(result)
                    else:
                        waiting.future.set_result(result)
            self.batches += 1
            self.requests += len(batch)

    def _take(self) -> list[_Waiting]:
        """The waiting requests that fit in one call (always at least one)."""
        batch = [self._queue.popleft()]
        rows = len(batch[0].rows)
        while self._queue and rows + len(self._queue[0].rows) <= self._max_rows:
            waiting = self._queue.popleft()
            batch.append(waiting)
            rows += len(waiting.rows)
        return batch

    def _score_group(self, model_name: str, group: list[_Waiting]) -> list[Any]:
        """In the worker: one call for the group; on failure, one call per request."""
        try:
            scored_by, probabilities = self._score(model_name, [row for w in group for row in w.rows])
        except Exception as exc:  # noqa: BLE001 - each request gets its own outcome below
            if len(group) == 1:
                return [exc]
            log.warning("a batch of %d requests failed (%s); scoring them one by one", len(group), exc)
            return [self._score_alone(model_name, waiting) for waiting in group]
        results, start = [], 0
        for waiting in group:
            end = start + len(waiting.rows)
            results.append((scored_by, probabilities[start:end]))
            start = end
        return results

    def _score_alone(self, model_name: str, waiting: _Waiting) -> Any:
        try:
            return self._score(model_name, waiting.rows)
        except Exception as exc:  # noqa: BLE001 - handed to the request's future
            return exc
