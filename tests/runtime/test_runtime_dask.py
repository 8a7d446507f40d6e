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
import dask_funcs
import distributed
import pytest

from runtime.dask import WayoutPlugin

_names = itertools.count()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    # A worker process that starts processes of its own must not be daemonic
    # (multiprocessing refuses daemons children): Dask's own setting for it.
    with dask.config.set({"distributed.worker.daemon": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     memory_limit=0) as cluster, \
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


# Measured at about 125 s on the loaded 2-core machine (why so long is not known yet:
# see the report of branch dask17); bounded above the default 120 s timeout.
@pytest.mark.timeout(240)
def test_wayout_fails_only_the_crashed_tasks_and_every_other_task_completes(client: Any) -> None:
    name, workers = _register(client, max_workers=2, job_timeout=3.0, memory_limit_mb=150,
                              ping_interval=0.2)
    crashes = [(dask_funcs.segfault, ()), (dask_funcs.exit_now, (3,)),
               (dask_funcs.hang, (20.0,)), (dask_funcs.grow, (300, 2.0))]
    with dask.annotate(executor=name):
        failed = [client.submit(fn, *args, workers=w, pure=False)
                  for w in workers for fn, args in crashes]
    outcomes = [_outcome(f) for f in failed]
    with dask.annotate(executor=name):
        later = [client.submit(dask_funcs.add, i, 1, workers=workers[i % 2], pure=False)
                 for i in range(8)]
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert not any(isinstance(o, BrokenProcessPool) and "terminated abruptly" in str(o)
                   for o in outcomes), outcomes
    assert [f.result(timeout=60) for f in later] == list(range(1, 9))
    metrics = client.scheduler_info()["workers"]
    assert all(isinstance(m["metrics"].get(f"{name}.available"), bool) for m in metrics.values())


def test_wayout_lets_dask_retries_run_a_crashed_task_again(client: Any, tmp_path: Path) -> None:
    name, workers = _register(client, max_workers=1)
    with dask.annotate(executor=name, retries=1):
        again = client.submit(dask_funcs.segfault_once, str(tmp_path), 42, workers=workers[0],
                              pure=False)
    assert again.result(timeout=60) == 42
    assert (tmp_path / "tried").exists()
