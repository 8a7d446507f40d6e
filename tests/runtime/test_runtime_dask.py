"""wayout as the process executor of Dask workers, on a real LocalCluster.

One cluster per module (a scheduler and two worker processes on loopback).
Each test registers its own plugin under a fresh executor name, so a pool one
test breaks is not the next test's. The same crashes go to wayout's executor
and to a ProcessPoolExecutor in the same plugin, side by side.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import dask
import distributed
import pytest

import dask_funcs
from runtime.dask import WayoutPlugin

_names = itertools.count()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    # A worker process that starts processes of its own must not be daemonic
    # (multiprocessing refuses daemons children): Dask's own setting for it.
    with dask.config.set({"distributed.worker.daemon": False}), distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _register(client: Any, **kwargs: Any) -> tuple[str, list[str]]:
    name = f"pool{next(_names)}"
    client.register_plugin(WayoutPlugin(name=name, **kwargs))
    workers = sorted(client.scheduler_info()["workers"])
    assert len(workers) == 2
    return name, workers


def _outcome(future: Any) -> Any:
    try:
        return future.result(timeout=60)
    except Exception as exc:
        return exc


def test_a_segfault_breaks_the_process_pool_executor_for_every_later_task(client: Any) -> None:
    name, workers = _register(client, executor_factory=dask_funcs.ppe_factory)
    with dask.annotate(executor=name):
        crash = client.submit(dask_funcs.segfault, workers=workers[0], pure=False)
    assert isinstance(_outcome(crash), BrokenProcessPool)
    with dask.annotate(executor=name):
        later = [client.submit(dask_funcs.add, i, 1, workers=workers[0], pure=False)
                 for i in range(4)]
        other = [client.submit(dask_funcs.add, i, 1, workers=workers[1], pure=False)
                 for i in range(4)]
    assert all(isinstance(_outcome(f), BrokenProcessPool) for f in later)
    # the worker the crash did not touch goes on
    assert [f.result(timeout=60) for f in other] == [1, 2, 3, 4]


def test_the_plugin_refuses_a_bad_worker_count() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        WayoutPlugin(max_workers=0)
