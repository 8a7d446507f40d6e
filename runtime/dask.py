"""wayout as the process executor of Dask workers (the optional extra ``wayout[dask]``).

A Dask worker keeps named executors (``worker.executors``); a task picks one
with ``dask.annotate(executor=NAME)``. ``WayoutPlugin`` is a
``distributed.WorkerPlugin`` that gives each worker a ``runtime.Executor``
under ``NAME``::

    client.register_plugin(WayoutPlugin(name="wayout", max_workers=2,
                                        job_timeout=30, memory_limit_mb=500))
    with dask.annotate(executor="wayout", retries=2):
        futures = client.map(work, items)

A task whose child segfaults, exits, hangs past ``job_timeout`` or grows past
``memory_limit_mb`` fails alone (``ChildDied``, ``JobTimeout``...), or is run
again by Dask's ``retries=``; the pool replaces the child and every other
task goes on. A ``ProcessPoolExecutor`` in the same place is broken for good
by one crashed task (every later task fails ``BrokenProcessPool`` until the
worker restarts).

The pool is shut down when the worker closes (``teardown``), and the worker
reports the pool's availability in its metrics (``worker.metrics``, sent with
each heartbeat; ``client.scheduler_info()["workers"][addr]["metrics"]
["wayout.available"]``).

``distributed`` is imported only by this module; the rest of ``runtime``
does not need it.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from distributed import WorkerPlugin

__all__ = ["WayoutPlugin"]


def _default_factory(max_workers: int, settings: dict[str, Any]) -> cf.Executor:
    from runtime.executor import Executor  # the library's, imported when a worker starts

    return Executor(max_workers=max_workers, **settings)


class WayoutPlugin(WorkerPlugin):  # type: ignore[misc]
    """Give each Dask worker an executor of ``max_workers`` supervised children under ``name``.

    Every other keyword is a ``PoolConfig`` field of that pool (``job_timeout``,
    ``memory_limit_mb``, ``spawn_timeout``...). ``executor_factory(max_workers,
    settings)`` builds the executor instead of ``runtime.Executor`` (the tests
    put a ``ProcessPoolExecutor`` there to compare).
    """

    def __init__(self, name: str = "wayout", max_workers: int = 1, *,
                 executor_factory: Callable[[int, dict[str, Any]], cf.Executor] | None = None,
                 **settings: Any) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"WayoutPlugin: max_workers must be an int >= 1, not {max_workers!r}")
        self.name = name
        self.idempotent = False
        self.max_workers = max_workers
        self.settings = dict(settings)
        self.executor_factory = executor_factory or _default_factory

    def setup(self, worker: Any) -> None:
        executor = self.executor_factory(self.max_workers, dict(self.settings))
        worker.executors[self.name] = executor
        worker.metrics[f"{self.name}.available"] = (
            lambda _worker, executor=executor: _available(executor))

    def teardown(self, worker: Any) -> None:
        worker.metrics.pop(f"{self.name}.available", None)
        executor = worker.executors.pop(self.name, None)
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _available(executor: cf.Executor) -> bool | None:
    """Whether the pool can take a job now; None for an executor that cannot say."""
    status = getattr(executor, "status", None)
    if status is None:
        return None
    return bool(status().available)
