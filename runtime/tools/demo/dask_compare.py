"""``wayout demo --dask``: ProcessPoolExecutor and wayout behind the same Dask workers.

A real ``distributed.LocalCluster`` (a scheduler and two worker processes on
loopback, Dask's default settings) and ``runtime.dask.WayoutPlugin`` on it,
twice: once with a ``ProcessPoolExecutor`` in the plugin's place, once with
wayout's pool. Each executor gets the same work: one task that segfaults on
each worker, then ``later`` short tasks per worker. Then wayout alone gets
the other faults (``os._exit``, a hang past ``job_timeout``, growth past
``memory_limit_mb``) mixed among short tasks, and a segfault that Dask's
``retries=1`` runs again. ``compare`` returns what happened, counted;
``main`` starts the cluster and prints it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.tools.demo import dask_tasks as tasks

if TYPE_CHECKING:
    from rich.console import Console

#: The wayout pool's settings in the demo: short, so that each fault shows in seconds.
WAYOUT_SETTINGS: dict[str, Any] = {"job_timeout": 2.5, "memory_limit_mb": 150,
                                   "ping_interval": 0.2}
#: Children per Dask worker, for both executors.
MAX_WORKERS = 2

_names = itertools.count()


@dataclass
class Side:
    """One executor's run: the crash, then the later tasks."""

    executor: str
    crash_errors: Counter[str] = field(default_factory=Counter)
    later_right: int = 0
    later_errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def later_failed(self) -> int:
        return sum(self.later_errors.values())


@dataclass
class Fault:
    """One kind of fault sent to wayout's pool: what each such task got."""

    name: str
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Comparison:
    workers: int
    later_per_worker: int
    sides: list[Side]
    faults: list[Fault]
    mixed_right: int = 0
    mixed_total: int = 0
    retried: str = ""
    seconds: float = 0.0

    def by_executor(self, name: str) -> Side:
        return next(s for s in self.sides if s.executor == name)


def _outcome(future: Any) -> tuple[bool, Any]:
    try:
        return True, future.result(timeout=60)
    except Exception as exc:
        return False, exc


def _error_name(exc: BaseException) -> str:
    return type(exc).__name__


def _register(client: Any, **kwargs: Any) -> str:
    from runtime.dask import WayoutPlugin

    name = f"demo{next(_names)}"
    client.register_plugin(WayoutPlugin(name=name, **kwargs))
    return name


def _side(client: Any, workers: list[str], label: str, later: int, **plugin: Any) -> Side:
    import dask

    side = Side(label)
    started = time.monotonic()
    name = _register(client, max_workers=MAX_WORKERS, **plugin)
    try:
        with dask.annotate(executor=name):
            crashes = [client.submit(tasks.segfault, workers=[w], pure=False) for w in workers]
        for future in crashes:
            ok, value = _outcome(future)
            side.crash_errors["(returned)" if ok else _error_name(value)] += 1
        with dask.annotate(executor=name):
            futures = [(i, client.submit(tasks.add, i, 1, workers=[w], pure=False))
                       for w in workers for i in range(later)]
        for i, future in futures:
            ok, value = _outcome(future)
            if ok and value == i + 1:
                side.later_right += 1
            else:
                side.later_errors[_error_name(value) if not ok else "wrong value"] += 1
    finally:
        client.unregister_worker_plugin(name)
    side.seconds = time.monotonic() - started
    return side


def compare(client: Any, *, later: int = 20) -> Comparison:
    """Run the comparison on ``client``'s cluster (every worker) and count what happened."""
    import dask

    started = time.monotonic()
    workers = sorted(client.nthreads())
    sides = [_side(client, workers, "ProcessPoolExecutor", later,
                   executor_factory=tasks.ppe_factory),
             _side(client, workers, "wayout", later, **WAYOUT_SETTINGS)]
    result = Comparison(len(workers), later, sides, [])
    # wayout alone: the other faults, with short tasks in among them.
    faults = {"os._exit(3)": (tasks.exit_now, (3,)),
              f"hang past job_timeout={WAYOUT_SETTINGS['job_timeout']:g}s": (tasks.hang, (60.0,)),
              f"grow 250 MB past memory_limit_mb={WAYOUT_SETTINGS['memory_limit_mb']}":
                  (tasks.grow, (250, 60.0))}
    name = _register(client, max_workers=MAX_WORKERS, **WAYOUT_SETTINGS)
    try:
        with dask.annotate(executor=name):
            submitted: list[tuple[str, Any]] = []
            mixed: list[tuple[int, Any]] = []
            for w in workers:
                for label, (fn, args) in faults.items():
                    submitted.append((label, client.submit(fn, *args, workers=[w], pure=False)))
                    for _ in range(2):
                        i = len(mixed)
                        mixed.append((i, client.submit(tasks.add, i, 1, workers=[w],
                                                       pure=False)))
        found = {label: Fault(label) for label in faults}
        for label, future in submitted:
            ok, value = _outcome(future)
            found[label].errors["(returned)" if ok else _error_name(value)] += 1
        result.faults = list(found.values())
        result.mixed_total = len(mixed)
        result.mixed_right = sum(1 for i, f in mixed if _outcome(f) == (True, i + 1))
        with tempfile.TemporaryDirectory(prefix="wayout-dask-") as token_dir, \
                dask.annotate(executor=name, retries=1):
            again = client.submit(tasks.segfault_once, token_dir, 42, workers=[workers[0]],
                                  pure=False)
            ok, value = _outcome(again)
        result.retried = f"returned {value!r}" if ok else f"failed: {_error_name(value)}"
    finally:
        client.unregister_worker_plugin(name)
    result.seconds = time.monotonic() - started
    return result


def expectations(result: Comparison) -> list[tuple[str, bool]]:
    """What the comparison must show, each with whether it held."""
    ppe = result.by_executor("ProcessPoolExecutor")
    wayout = result.by_executor("wayout")
    later = result.workers * result.later_per_worker
    return [
        ("ProcessPoolExecutor: after one segfault per worker, every later task fails",
         ppe.later_failed == later),
        ("wayout: the segfaults fail alone (ChildDied)",
         dict(wayout.crash_errors) == {"ChildDied": result.workers}),
        ("wayout: every later task completes with the right value", wayout.later_right == later),
        ("wayout: each other fault fails alone with its typed error",
         [dict(f.errors) for f in result.faults]
         == [{"ChildDied": result.workers}, {"JobTimeout": result.workers},
             {"ChildDied": result.workers}]),
        ("wayout: the short tasks among those faults complete right",
         result.mixed_right == result.mixed_total),
        ("wayout: Dask's retries=1 runs a crashed task again", result.retried == "returned 42"),
    ]


def show(console: Console, result: Comparison) -> None:
    from rich import box
    from rich.table import Table

    def errors(counter: Counter[str]) -> str:
        return ", ".join(f"{n} {name}" for name, n in counter.most_common()) or "none"

    table = Table(title=f"One segfaulting task on each of {result.workers} Dask workers, then "
                        f"{result.later_per_worker} short tasks per worker",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("executor", "the segfaults", "later tasks right", "later tasks failed",
                   "time"):
        table.add_column(column)
    later = result.workers * result.later_per_worker
    for side in result.sides:
        table.add_row(side.executor, errors(side.crash_errors),
                      f"{side.later_right}/{later}", errors(side.later_errors),
                      f"{side.seconds:.1f} s")
    console.print(table)
    faults = Table(title="wayout alone: other faults, with 2 short tasks after each, per worker",
                   title_justify="left", box=box.SIMPLE_HEAD)
    faults.add_column("fault")
    faults.add_column("what the tasks got")
    for fault in result.faults:
        faults.add_row(fault.name, errors(fault.errors))
    faults.add_row("short tasks among them", f"{result.mixed_right}/{result.mixed_total} right")
    faults.add_row("segfault once, retries=1", result.retried)
    console.print(faults)


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("wb") as out:
        os.dup2(out.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def main(console: Console) -> int:
    """Start a LocalCluster, compare, print; 0 only if every expectation held."""
    try:
        import distributed
    except ImportError:
        console.print("wayout demo --dask needs Dask: pip install 'wayout[dask]'")
        return 2
    import logging

    from rich.text import Text

    console.print(Text(
        "A Dask LocalCluster: a scheduler and 2 worker processes. Each worker gets, through "
        "runtime.dask.WayoutPlugin, an executor of 2 processes: first a ProcessPoolExecutor, "
        "then wayout's pool. Both get the same tasks; Dask picks the executor by "
        "dask.annotate(executor=...)."), soft_wrap=not console.is_terminal)
    started = time.monotonic()
    # Dask logs every failed task with its traceback: the tables say it shorter.
    for noisy in ("distributed", "wayout"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # The workers and their children inherit stderr: the crash reports (Python's
    # faulthandler on each segfault, wayout's log lines) go to a file instead.
    log_file = Path(tempfile.gettempdir()) / "wayout-demo-dask.log"
    with _stderr_to(log_file), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                     host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                     memory_limit=0,
                                     silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as client:
        result = compare(client)
    show(console, result)
    console.print(f"  the workers' stderr (crash reports) is in {log_file}")
    checks = expectations(result)
    for text, held in checks:
        console.print(f"  {'ok  ' if held else 'FAIL'} {text}")
    console.print(f"  {time.monotonic() - started:.1f} s in all (cluster start and stop "
                  f"included)")
    return 0 if all(held for _, held in checks) else 1
