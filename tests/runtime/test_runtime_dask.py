"""wayout as the process executor of Dask workers, on a real LocalCluster.

One cluster per module (a scheduler and two worker processes on loopback,
with Dask's default settings: its workers are daemonic). Each test registers
its own plugin under a fresh executor name, so a pool one test breaks is not
the next test's. The same crashes go to wayout's executor and to a
ProcessPoolExecutor in the same plugin, side by side.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import dask_funcs
import psutil
import pytest

# Without the dask extra this module is skipped, not a collection error for the
# whole run; `make test` refuses to run without it, so a skip there is no pass.
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from fsm.errors import ConfigError  # noqa: E402
from runtime.dask import WayoutPlugin, _available  # noqa: E402
from runtime.errors import ChildDied, JobTimeout  # noqa: E402
from runtime.executor import Executor  # noqa: E402

_names = itertools.count()


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  memory_limit=0) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _register(client: Any, **kwargs: Any) -> tuple[str, list[str]]:
    name = f"pool{next(_names)}"
    client.register_plugin(WayoutPlugin(name=name, **kwargs))
    workers = sorted(client.nthreads())
    assert len(workers) == 2
    return name, workers


def _outcome(future: Any) -> Any:
    try:
        return future.result(timeout=60)
    except Exception as exc:
        return exc


def _eventually(read: Callable[[], Any], expected: Any, timeout: float = 30.0) -> None:
    """Poll ``read`` until it returns ``expected`` (a state reached asynchronously)."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}, not {expected!r}, after {timeout}s"
        time.sleep(0.05)


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


def test_the_plugin_refuses_bad_settings_in_the_client() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        WayoutPlugin(max_workers=0)
    with pytest.raises(ConfigError, match="memory_limit"):
        WayoutPlugin(memory_limit_mb=-1)
    with pytest.raises(ConfigError, match="PoolConfig's fields"):
        WayoutPlugin(no_such_setting=1)
    with pytest.raises(ConfigError, match="max_children"):  # max_workers sets it
        WayoutPlugin(max_workers=2, max_children=3)


@pytest.mark.parametrize("module", ["no_such_module_anywhere", "no_such_package.sub", ""])
def test_a_preload_module_the_worker_cannot_import_fails_its_setup(module: str) -> None:
    worker = types.SimpleNamespace(address="tcp://127.0.0.1:1", executors={}, metrics={})
    with pytest.raises(ConfigError, match=f"preload module {module!r}.*127.0.0.1:1"):
        WayoutPlugin(preload=["json", module]).setup(worker)
    assert worker.executors == {} and worker.metrics == {}  # nothing started


def test_wayout_fails_only_the_crashed_tasks_and_every_other_task_completes(client: Any) -> None:
    # Short tasks go in among the crashes, on the same workers, so that some
    # land on the children that replace the crashed ones: each runs within the
    # short job_timeout (those fresh children were forked with distributed
    # imported: the plugin's preload).
    name, workers = _register(client, max_workers=2, job_timeout=2.5, memory_limit_mb=150,
                              ping_interval=0.2)
    crashes = [(dask_funcs.segfault, ()), (dask_funcs.exit_now, (3,)),
               (dask_funcs.hang, (30.0,)), (dask_funcs.grow, (250, 10.0))]
    with dask.annotate(executor=name):
        failed, adds = [], []
        for w in workers:
            for fn, args in crashes:
                failed.append(client.submit(fn, *args, workers=w, pure=False))
                adds.append(client.submit(dask_funcs.add, len(adds), 1, workers=w, pure=False))
    outcomes = [_outcome(f) for f in failed]
    assert [f.result(timeout=60) for f in adds] == list(range(1, 9))
    for segfault, exit_now, hang, grow in zip(*[iter(outcomes)] * 4, strict=True):
        assert isinstance(segfault, ChildDied) and "SIGSEGV" in str(segfault), segfault
        assert isinstance(exit_now, ChildDied) and "exited with code 3" in str(exit_now), exit_now
        assert isinstance(hang, JobTimeout), hang
        assert isinstance(grow, ChildDied) and "memory_limit_mb=150" in str(grow), grow
    # Later tasks on the same pools, after every crash.
    with dask.annotate(executor=name):
        later = [client.submit(dask_funcs.add, i, 1, workers=workers[i % 2], pure=False)
                 for i in range(8)]
    assert [f.result(timeout=60) for f in later] == list(range(1, 9))


def test_wayout_lets_dask_retries_run_a_crashed_task_again(client: Any, tmp_path: Path) -> None:
    name, workers = _register(client, max_workers=1)
    with dask.annotate(executor=name, retries=1):
        again = client.submit(dask_funcs.segfault_once, str(tmp_path), 42, workers=workers[0],
                              pure=False)
    assert again.result(timeout=60) == 42
    assert (tmp_path / "tried").exists()


def test_the_worker_reports_whether_its_pool_can_take_a_task(client: Any) -> None:
    name, workers = _register(client, max_workers=1, job_timeout=2.0)
    available = functools.partial(dask_funcs.pool_available, name)

    def on_first() -> Any:
        return client.run(available, workers=[workers[0]])[workers[0]]

    _eventually(on_first, True)  # its one child is ready
    with dask.annotate(executor=name):
        hang = client.submit(dask_funcs.hang, 30.0, workers=workers[0], pure=False)
    _eventually(on_first, False)  # its one child is busy
    assert isinstance(_outcome(hang), JobTimeout)
    _eventually(on_first, True)  # replaced
    # The same value goes to the scheduler with each heartbeat.
    metric = functools.partial(dask_funcs.scheduler_metric, workers[0], f"{name}.available")
    _eventually(lambda: client.run_on_scheduler(metric), True)


def test_the_availability_metric_waits_off_the_workers_event_loop() -> None:
    released = threading.Event()

    class Waits(Executor):
        def __init__(self) -> None:  # no pool: only status() is asked
            pass

        def status(self, timeout: float | None = None) -> Any:
            # The gate is opened by the event loop: only if it runs meanwhile.
            return types.SimpleNamespace(available=released.wait(60))

    async def heartbeat() -> Any:
        asyncio.get_running_loop().call_soon(released.set)
        metric = _available(Waits())
        return await metric if inspect.isawaitable(metric) else metric  # as get_metrics does

    assert asyncio.run(heartbeat()) is True


def test_a_plugin_set_up_or_torn_down_during_a_heartbeat_leaves_its_metrics_readable() -> None:
    # Worker.get_metrics iterates worker.metrics across awaits; CI saw a
    # second plugin's setup end that iteration with RuntimeError, and the
    # worker closed.  A thread pool stands in for wayout's: no child is started.
    worker = types.SimpleNamespace(address="tcp://127.0.0.1:1", executors={},
                                   metrics={"first": len, "second": len})
    plugin = WayoutPlugin(executor_factory=lambda n, _settings: ThreadPoolExecutor(n))
    heartbeat = iter(worker.metrics.items())
    assert next(heartbeat)[0] == "first"
    plugin.setup(worker)
    assert next(heartbeat)[0] == "second"  # RuntimeError if changed in place
    assert set(worker.metrics) == {"first", "second", f"{plugin.name}.available"}
    heartbeat = iter(worker.metrics.items())
    next(heartbeat)
    asyncio.run(plugin.teardown(worker))
    assert [k for k, _ in heartbeat] == ["second", f"{plugin.name}.available"]
    assert set(worker.metrics) == {"first", "second"}


def test_the_pool_is_closed_with_its_plugin_and_every_child_reaped(client: Any) -> None:
    # Worker.close tears its plugins down the same way (Worker.plugin_remove).
    name, _ = _register(client, max_workers=2)
    pids_of = functools.partial(dask_funcs.pool_pids, name)
    _eventually(lambda: [len(p) for p in client.run(pids_of).values()], [2, 2])  # started
    pids = client.run(pids_of)
    client.unregister_worker_plugin(name)
    for worker, left in pids.items():
        state = client.run(functools.partial(dask_funcs.after_teardown, name, left),
                           workers=[worker])[worker]
        assert state == (False, False, []), state


def test_the_demo_comparison_shows_ppe_broken_and_wayout_going_on(client: Any) -> None:
    from runtime.tools.demo import dask_compare

    result = dask_compare.compare(client, later=5)
    ppe, wayout = result.by_executor("ProcessPoolExecutor"), result.by_executor("wayout")
    assert dict(ppe.later_errors) == {"BrokenProcessPool": 10}, ppe
    assert wayout.later_right == 10 and not wayout.later_errors, wayout
    failed = [text for text, held in dask_compare.expectations(result) if not held]
    assert not failed, (failed, result)


def test_no_child_outlives_its_dask_worker() -> None:
    # Its own cluster of one worker, closed here: Worker.close removes the
    # plugin (teardown shuts the pool down); a worker killed outright takes its
    # children along anyway (PR_SET_PDEATHSIG).
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  memory_limit=0) as cluster, \
            distributed.Client(cluster) as c:
        c.register_plugin(WayoutPlugin(name="own", max_workers=2))
        pids_of = functools.partial(dask_funcs.pool_pids, "own")
        _eventually(lambda: [len(p) for p in c.run(pids_of).values()], [2])
        pids = next(iter(c.run(pids_of).values()))
        assert all(psutil.pid_exists(pid) for pid in pids)
    # Reaped by the forkserver (their parent), which exits with the worker.
    _eventually(lambda: [pid for pid in pids if _alive(pid)], [])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
