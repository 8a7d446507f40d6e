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
``memory_limit_mb`` fails alone (``ChildDied``, ``JobTimeout``), or is run
again by Dask's ``retries=``; the pool replaces the child and every other
task goes on. A ``ProcessPoolExecutor`` in the same place is broken for good
by one crashed task (every later task fails ``BrokenProcessPool`` until the
worker restarts).

What the plugin does on each worker, and why:

* **Daemonic workers.** Dask starts worker processes daemonic
  (``distributed.worker.daemon``), and ``multiprocessing`` refuses to start
  children from a daemonic process, lest they be orphaned when it is
  terminated. wayout's children cannot be orphaned: each one dies with its
  parent (``PR_SET_PDEATHSIG``), and under forkserver the forkserver exits
  when the worker is gone. So the plugin clears the worker process's daemon
  flag when it sets up a wayout pool; nothing else about the worker changes
  (its nanny still treats it as it did). A custom ``executor_factory`` is
  left to decide for itself.
* **Fresh children start warm.** Every task runs inside Dask's task runner
  (``distributed``) and this module's ``_run_dask_task`` (which imports
  ``runtime.executor``, ``fsm``...); a child that imported them only on its
  first task would spend that import (1 to 2 s on a loaded machine) inside
  the task's ``job_timeout``. The plugin adds this module, and ``preload``
  (your tasks' heavy imports), to the forkserver's preload, so the forkserver
  imports them once and every child, replacements included, is forked with
  them.
* **A timed-out task fails with ``JobTimeout``.** Dask's task runner catches
  every ``BaseException`` of the task, wayout's cancellation too, and returns
  it as a result; the plugin raises it again in the child, so the child
  acknowledges the cancel and the task fails ``JobTimeout`` (without that it
  would "fail" with wayout's private cancellation exception, which the client
  cannot even raise).
* **Status.** The worker reports the pool's availability in its heartbeat
  metrics: ``client.scheduler_info()["workers"][addr]["metrics"]
  [NAME + ".available"]`` is ``True`` when the pool can take a job now,
  ``False`` when it cannot (every child busy or restarting, restarts backing
  off, or the pool did not answer within a second; the wait for that answer
  is in a thread, not on the worker's event loop). The worker's own
  ``status`` (running, paused...) is left alone: it is worker-wide, and
  pausing a worker for one executor would stop its other tasks too.
* **Close.** The pool is shut down when the worker closes or the plugin is
  removed (``teardown``): tasks waiting in the executor are cancelled, the ones
  handed to the pool (running, or next in line for a child) finish or reach
  ``job_timeout`` (with ``job_timeout=None`` a hung task holds the worker's
  close), then every child is reaped; the wait happens in a thread, not on
  the worker's event loop.

``distributed`` is imported only by this module; the rest of ``runtime``
does not need it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import importlib.util
import logging
import multiprocessing
import multiprocessing.forkserver
from collections.abc import Callable, Iterable
from typing import Any

from distributed import WorkerPlugin

from fsm.errors import ConfigError
from runtime.child import _JobCancelled
from runtime.executor import Executor, check_max_workers, pool_config
from runtime.process import add_forkserver_preload

__all__ = ["DaskWorkerExecutor", "WayoutPlugin"]

log = logging.getLogger("wayout")

#: How long a heartbeat waits for the pool to say whether it is available.
STATUS_TIMEOUT = 1.0


def _run_dask_task(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """In the child: run Dask's task runner; a cancellation it swallowed is raised again."""
    message = fn(*args, **kwargs)
    if isinstance(message, dict) and message.get("op") == "task-erred":
        error = message.get("actual_exception")
        if isinstance(error, _JobCancelled):
            raise error
    return message


class DaskWorkerExecutor(Executor):
    """``runtime.Executor`` for a Dask worker: each job runs through ``_run_dask_task``."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return super().submit(_run_dask_task, fn, *args, **kwargs)


def _default_factory(max_workers: int, settings: dict[str, Any]) -> cf.Executor:
    return DaskWorkerExecutor(max_workers=max_workers, **settings)


class WayoutPlugin(WorkerPlugin):
    """Give each Dask worker an executor of ``max_workers`` supervised children under ``name``.

    Every other keyword is a ``PoolConfig`` field of that pool (``job_timeout``,
    ``memory_limit_mb``, ``spawn_timeout``...); they are checked here, in the
    client, before any worker sees them. ``preload`` names modules the
    forkserver imports once, so that children start with them (your tasks'
    heavy imports; ``runtime.dask`` and so ``distributed`` always are).
    ``executor_factory(max_workers, settings)`` builds the executor instead
    of wayout's (the tests and ``wayout demo --dask`` put a
    ``ProcessPoolExecutor`` there to compare).
    """

    def __init__(self, name: str = "wayout", max_workers: int = 1, *,
                 preload: Iterable[str] = (),
                 executor_factory: Callable[[int, dict[str, Any]], cf.Executor] | None = None,
                 **settings: Any) -> None:
        check_max_workers(max_workers)
        if executor_factory is None:
            # max_workers sets both: the same field twice would be ambiguous.
            twice = sorted({"max_children", "num_idle"} & settings.keys())
            if twice:
                raise ConfigError(f"WayoutPlugin: {', '.join(twice)} is set by max_workers")
            pool_config(None, {**settings, "max_children": max_workers,
                               "num_idle": max_workers}, "WayoutPlugin")
        self.name = name
        self.max_workers = max_workers
        self.preload = tuple(preload)
        self.settings = dict(settings)
        self.executor_factory = executor_factory

    def setup(self, worker: Any) -> None:
        # On the worker, where the tasks import them (the client may lack
        # them): the forkserver would skip a module it cannot import without a
        # word, and every child would then fail its first task importing it.
        for module in self.preload:
            _check_importable(module, worker)
        factory = self.executor_factory
        if factory is None:
            _allow_children()
            _add_forkserver_preload((__name__, *self.preload))
            factory = _default_factory
        executor = factory(self.max_workers, dict(self.settings))
        worker.executors[self.name] = executor
        # A new dict, never the worker's own changed in place: a heartbeat in
        # progress iterates worker.metrics across the awaits of its metrics
        # (another pool's availability among them), and a key added under it
        # ends that heartbeat with "dictionary changed size during iteration",
        # which closes the worker.
        worker.metrics = {**worker.metrics, self._metric: (
            lambda _worker, executor=executor: _available(executor))}

    @property
    def _metric(self) -> str:
        return f"{self.name}.available"

    async def teardown(self, worker: Any) -> None:
        worker.metrics = {k: v for k, v in worker.metrics.items() if k != self._metric}
        executor = worker.executors.pop(self.name, None)
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


def _allow_children() -> None:
    """Clear the daemon flag of this (worker) process: see the module's doc for why it is safe."""
    process = multiprocessing.current_process()
    if process.daemon:
        log.info("wayout: Dask worker %s is daemonic; cleared, so that it can start wayout's "
                 "children (they die with it: PR_SET_PDEATHSIG)", process.name)
        process.daemon = False  # allowed: its _popen, the parent's handle, is not ours


def _check_importable(module: str, worker: Any) -> None:
    where = getattr(worker, "address", "this worker")
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError) as exc:  # a parent package that is missing, or a bad name
        raise ConfigError(f"WayoutPlugin: preload module {module!r} cannot be imported on "
                          f"{where} ({exc}); install it there, or drop it from preload") from exc
    if not found:
        raise ConfigError(f"WayoutPlugin: preload module {module!r} is not installed on "
                          f"{where}; install it there, or drop it from preload")


def _add_forkserver_preload(modules: tuple[str, ...]) -> None:
    missing = add_forkserver_preload(modules)
    server = multiprocessing.forkserver._forkserver  # no public getter of its pid
    if missing and getattr(server, "_forkserver_pid", None) is not None:
        log.warning("wayout: the forkserver runs already; %s not preloaded (each child "
                    "imports them on its first task)", ", ".join(missing))


async def _available(executor: cf.Executor) -> bool | None:
    """Whether the pool can take a job now; None for an executor that cannot say."""
    if not isinstance(executor, Executor):
        return None
    try:
        # In a thread, not on the worker's event loop, which waiting for the
        # pool's loop would stall (every comm and task of the worker) for up
        # to STATUS_TIMEOUT; Worker.get_metrics awaits an awaitable metric.
        status = await asyncio.to_thread(executor.status, timeout=STATUS_TIMEOUT)
    except TimeoutError:
        return False
    return status.available
