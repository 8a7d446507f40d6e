"""Tasks the Dask tests run on the workers' executors (importable by name there).

The tasks are the demo's (``wayout demo --dask`` runs the same comparison);
the helpers below run on the workers themselves, by ``client.run``.
"""

from __future__ import annotations

import os
from typing import Any

from runtime.tools.demo.dask_tasks import (
    add,
    exit_now,
    grow,
    hang,
    ppe_factory,
    segfault,
    segfault_once,
)

__all__ = ["add", "after_teardown", "exit_now", "grow", "hang", "pool_available", "pool_pids",
           "ppe_factory", "scheduler_metric", "segfault", "segfault_once"]


def pool_pids(name: str, dask_worker: Any) -> list[int]:
    """The pids of the children of the worker's pool ``name``."""
    return sorted(dask_worker.executors[name].status().pids.values())


async def pool_available(name: str, dask_worker: Any) -> Any:
    """What the worker's heartbeat would report for pool ``name`` (client.run awaits it)."""
    return await dask_worker.metrics[f"{name}.available"](dask_worker)


def scheduler_metric(address: str, key: str, dask_scheduler: Any) -> Any:
    """Run on the scheduler: the metric ``key`` of worker ``address``, from its last heartbeat."""
    return dask_scheduler.workers[address].metrics.get(key)


def after_teardown(name: str, pids: list[int], dask_worker: Any) -> tuple[bool, bool, list[int]]:
    """Whether the worker still has the executor, its metric, and which ``pids`` still exist."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return (name in dask_worker.executors, f"{name}.available" in dask_worker.metrics, alive)
