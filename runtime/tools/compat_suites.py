"""Run pebble's and loky's own pool tests against ``runtime.Executor``, through a
thin adapter each, and report the counts.

    python -m runtime.tools.compat_suites [--suite pebble,loky] [--methods fork,forkserver,spawn]
        [-k NAME] [-v] [--all] [--cache DIR]

The tests are the projects' own, from their source distributions, fetched with
``pip download --no-binary :all:`` (the installed loky's version; pebble's
newest) into a cache directory (``~/.cache/wayout-compat``) and read there;
nothing of them is copied into this repo. pebble itself is imported from its
sdist, so it need not be installed.

* **pebble**: ``test/test_process_pool_{fork,forkserver,spawn}.py`` (unittest),
  with the module's ``ProcessPool`` replaced by ``PebblePool``, which maps
  ``schedule``/``submit``/``map``/``close``/``stop``/``join`` onto an Executor.
* **loky**: ``tests/test_process_executor_{forkserver,spawn}.py`` (pytest; loky
  has no fork variant), with each test class's ``executor_type`` replaced by
  ``LokyExecutor``, an Executor that takes loky's ``context`` and
  ``shutdown(kill_workers=...)`` and shows ``_processes`` and ``_flags``.
  loky's reusable-executor tests are not run: every one of them asserts on
  ``get_reusable_executor``'s own resizing, its worker timeout or its
  broken-pool flags, which have no wayout equivalent (a long-lived Executor
  is the reusable executor).

``DIFFERENT`` lists, per suite, the tests that fail on purpose (by method name,
or ``Class.method`` where the same name passes in another class), each with its
reason (the README's table of deliberate differences). Exit status 0 when no
test outside the lists failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import time
import types
import unittest
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from runtime.executor import Executor
from runtime.tools.compat_futures import OutcomeResult, flatten, print_per_method

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wayout-compat"

_ACK = "a future is RUNNING once its child acknowledged the job, so cancel() stops a job only "

_NOT_BROKEN = ("a dead worker fails only its job (ChildDied, a BrokenProcessPool); the "
               "executor goes on instead of breaking")
_EVENT = ("the mixin hands a multiprocessing.Event to every worker through initargs; wayout "
          "pickles initargs and the Event refuses, so the adapter leaves that initializer out "
          "and a job that waits on it fails")
_FRESH = "not applicable: runs a fresh interpreter with loky's own executor"

#: suite -> test method name -> why runtime.Executor behaves differently on purpose.
DIFFERENT: dict[str, dict[str, str]] = {
    "pebble": {
        "TestProcessPool.test_process_pool_cancel": _ACK + "before it ran; pebble's "
                                                           "terminates a running job",
        "TestProcessPool.test_process_pool_cancel_callback": _ACK + "before it ran",
        "TestProcessPool.test_process_pool_map_cancel": _ACK + "before it ran: the chunk "
                                                               "after the first may be "
                                                               "running already",
        "test_process_pool_stop_cancel": _ACK + "before it ran, so the next job may run in "
                                                "the same child",
        "test_process_pool_stop_futures": "stop() settles every future (cancelled), as every "
                                          "job settles; pebble's leaves the queued ones "
                                          "pending forever",
        "test_process_pool_broken_pickling_error": "an exception that cannot be rebuilt in "
                                                   "the parent fails only its job, as a "
                                                   "JobFailed with its text, not a "
                                                   "BrokenProcessPool",
        "test_process_pool_pickling_error_result": "a result that cannot be pickled is a "
                                                   "JobFailed naming its type (remote_type), "
                                                   "not the TypeError itself",
        "test_process_pool_large_data": "every message has a bound (max_message_bytes, 64 MiB "
                                        "by default); the test sends 107 MiB",
        "test_process_pool_map_timeout": "a job past its bound is first interrupted inside "
                                         "its code (an exception from the cancel signal); "
                                         "pebble's own chunk runner catches BaseException "
                                         "and returns it as the chunk's value",
        "test_process_pool_broken_initializer": "a failing initializer is retried under the "
                                                "restart intensity; the pool reports itself "
                                                "unavailable instead of raising RuntimeError "
                                                "at schedule()",
        "test_process_pool_expired_worker": "not applicable: reads pebble's "
                                            "pool._pool_manager",
        "test_process_pool_join_workers": "not applicable: reads pebble's pool._pool_manager",
        "test_process_pool_map_broken_pool": "not applicable: sets pebble's pool._context",
        "test_process_pool_active_error": "not applicable: patches pebble's manager loop",
        "test_process_pool_broken_worker_launch": "not applicable: patches pebble's "
                                                  "launch_process",
    },
    "loky": {
        "test_del_shutdown": "the executor is shut down by its user or at exit, not when "
                             "garbage collected; it has no _executor_manager_thread",
        "test_processes_terminate_on_executor_gc": "the executor is shut down by its user or "
                                                   "at exit, not by garbage collection",
        "test_processes_crash_handling_after_executor_gc": _NOT_BROKEN,
        "test_killed_child": _NOT_BROKEN,
        "test_killed_child_with_cancelled_work_items": _NOT_BROKEN,
        "test_exited_child": _NOT_BROKEN,
        "test_crash": _NOT_BROKEN,
        "test_shutdown_deadlock": _NOT_BROKEN,
        "test_traceback": "the exception's class derives from its type and JobFailed, its "
                          "cause a RemoteTraceback",
        "test_shutdown_and_kill_workers": _EVENT,
        "test_first_exception": _EVENT,
        "test_timeout": _EVENT,
        "test_max_depth": "nested executors in workers: each nested Executor starts a pool "
                          "of its own; loky's depth limit does not exist",
        "test_worker_timeout": "children are kept warm (num_idle): loky's idle timeout has "
                               "no equivalent",
        "test_memory_leak_protection": "loky's worker memory-leak protection has no "
                                       "equivalent (memory_limit_mb is a hard bound)",
        "test_serialization": "loky's job_reducers/result_reducers have no equivalent",
        "test_reference_cycle_collection": "a local function is pickled by reference, unless "
                                           "serializer='cloudpickle' (off by default)",
        "test_exception_cause_with_tblib": "a local function is pickled by reference, unless "
                                           "serializer='cloudpickle' (off by default)",
        "test_context_manager_shutdown": "not applicable: joins loky's process objects "
                                         "(_processes here are psutil's)",
        "test_no_failure_on_large_data_send": "every message has a bound (max_message_bytes, "
                                              "64 MiB by default); the test sends 2 GiB",
        "test_shutdown_with_sys_exit_at_pickle": "a SystemExit raised while pickling a job "
                                                 "lands in the future as InvalidJob, not "
                                                 "turned into a PicklingError",
        "test_manager_thread_crash_breaks_executor": "not applicable: patches loky's manager "
                                                     "thread",
        "test_feeder_error_hook_crash_breaks_executor": "not applicable: patches loky's "
                                                        "feeder thread",
        "test_processes_terminate": "not applicable: joins loky's process objects "
                                    "(_processes here are psutil's)",
        "test_shutdown_deadlock_pickle": "not applicable: reads loky's _call_queue",
        "test_shutdown_no_wait": "not applicable: reads loky's _executor_manager_thread",
        "test_hang_gh94440": _FRESH,
        "test_hang_issue39205": _FRESH,
        "test_interpreter_shutdown": _FRESH,
    },
}


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def fetch(project: str, version: str | None, cache: Path) -> Path:
    """The unpacked sdist of ``project`` (``version``, or the newest), fetched with pip."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = f"{project}=={version}" if version else project
    existing = sorted(cache.glob(f"{project}-{version or '*'}.tar.gz"))
    if not existing:
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
              "--no-binary", ":all:", "--dest", str(cache), wanted])
        existing = sorted(cache.glob(f"{project}-{version or '*'}.tar.gz"))
    if not existing:
        raise SystemExit(f"pip download {wanted} gave no sdist in {cache}")
    archive = existing[-1]
    root = cache / archive.name.removesuffix(".tar.gz")
    if not root.is_dir():
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
    return root


def _on_path(directory: Path) -> None:
    """On sys.path here and in every child (spawn and forkserver children too)."""
    sys.path.insert(0, str(directory))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(directory), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


# ----------------------------------------------------------------------
# pebble
# ----------------------------------------------------------------------


class PebblePool:
    """pebble's ``ProcessPool`` API over a ``runtime.Executor``."""

    def __init__(self, max_workers: int | None = None, max_tasks: int = 0,
                 initializer: Callable[..., Any] | None = None, initargs: Iterable[Any] = (),
                 context: Any = None) -> None:
        method = None if context is None else context.get_start_method()
        self._executor = Executor(max_workers or os.cpu_count() or 1, mp_context=method,
                                  initializer=initializer, initargs=tuple(initargs),
                                  max_tasks_per_child=max_tasks or None)
        self._state = "running"
        self._futures: list[cf.Future[Any]] = []

    def __enter__(self) -> PebblePool:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
        self.join()

    @property
    def active(self) -> bool:
        if self._state == "closed" and all(f.done() for f in self._futures):
            return False
        return self._state in ("running", "closed")

    def _check(self) -> None:
        if self._state != "running":
            raise RuntimeError("The Pool is not active")

    def schedule(self, function: Callable[..., Any], args: Iterable[Any] = (),
                 kwargs: dict[str, Any] | None = None,
                 timeout: float | None = None) -> cf.Future[Any]:
        self._check()
        target: Any = self._executor if timeout is None else self._executor.options(
            timeout=timeout)
        future: cf.Future[Any] = target.submit(function, *args, **(kwargs or {}))
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(future)
        return future

    def submit(self, function: Callable[..., Any], timeout: float | None, /, *args: Any,
               **kwargs: Any) -> cf.Future[Any]:
        return self.schedule(function, args, kwargs, timeout)

    def map(self, function: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Any:
        from pebble.pool.base_pool import (  # type: ignore[import-not-found]
            ProcessMapFuture,
            iter_chunks,
            map_results,
        )
        from pebble.pool.process import process_chunk  # type: ignore[import-not-found]

        self._check()
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        futures = [self.schedule(process_chunk, args=(function, chunk), timeout=timeout)
                   for chunk in iter_chunks(zip(*iterables, strict=False), chunksize)]
        return map_results(ProcessMapFuture(futures), timeout)

    def close(self) -> None:
        self._state = "closed"
        self._executor.shutdown(wait=False)

    def stop(self) -> None:
        self._state = "stopped"
        self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self, timeout: float | None = None) -> None:
        if self._state == "running":
            raise RuntimeError("The Pool is still running")
        if self._state == "closed" and timeout is not None:
            _, pending = cf.wait(self._futures, timeout)
            if pending:
                raise TimeoutError("Tasks are still being executed")
        self._executor.shutdown(wait=True)
        self._state = "stopped"


def pebble_suite(root: Path, methods: list[str]) -> unittest.TestSuite:
    test_dir = root / "test"
    _on_path(root)
    _on_path(test_dir)
    suite = unittest.TestSuite()
    for method in methods:
        module = importlib.import_module(f"test_process_pool_{method}")
        module.ProcessPool = PebblePool  # type: ignore[attr-defined]
        suite.addTests(unittest.defaultTestLoader.loadTestsFromModule(module))
    return suite


# ----------------------------------------------------------------------
# loky
# ----------------------------------------------------------------------


class LokyExecutor(Executor):
    """loky's ``ProcessPoolExecutor`` constructor and shutdown over a ``runtime.Executor``."""

    def __init__(self, max_workers: int | None = None, job_reducers: Any = None,
                 result_reducers: Any = None, timeout: float | None = None,
                 context: Any = None, initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = (), env: Any = None) -> None:
        method = None if context is None else context.get_start_method()
        if method == "loky":  # loky's fork+exec: a fresh interpreter, as spawn
            method = "spawn"
        if initializer is not None and getattr(initializer, "__name__", "") == \
                "initializer_event":
            # The mixin hands every worker a multiprocessing.Event; wayout pickles
            # initargs, and such an Event refuses to be pickled.
            initializer, initargs = None, ()
        super().__init__(max_workers, mp_context=method, initializer=initializer,
                         initargs=initargs)
        self._flags = types.SimpleNamespace(broken=None, shutdown=False)

    @property
    def _processes(self) -> dict[int, Any]:
        import psutil  # type: ignore[import-untyped]

        return {pid: psutil.Process(pid) for pid in self.status().pids.values()}

    def shutdown(self, wait: bool = True, *, kill_workers: bool = False,
                 cancel_futures: bool = False) -> None:
        self._flags.shutdown = True
        super().shutdown(wait, cancel_futures=cancel_futures or kill_workers)


class _LokyPlugin:
    """pytest plugin: every loky test class's executor is a LokyExecutor; outcomes counted."""

    def __init__(self, listed: dict[str, str], run_listed: bool, name: str | None) -> None:
        self.listed = listed
        self.run_listed = run_listed
        self.name = name
        self.outcomes: dict[str, str] = {}
        self.different: list[str] = []

    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        kept = []
        for item in items:
            cls = getattr(item, "cls", None)
            if cls is not None and getattr(cls, "executor_type", None) is not None:
                cls.executor_type = LokyExecutor
            if self.name and self.name not in item.nodeid:
                continue
            if item.originalname in self.listed and not self.run_listed:
                self.different.append(item.nodeid)
                continue
            kept.append(item)
        items[:] = kept

    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Any:
        # A test that failed before shutting its executor down must not leave
        # children for the next test's process count: shut every executor
        # still open down once the test's own teardown ran.
        from runtime.executor import _executors

        for executor in list(_executors):
            executor.shutdown(wait=True, cancel_futures=True)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            previous = self.outcomes.get(report.nodeid)
            if previous not in (None, "passed"):
                return
            self.outcomes[report.nodeid] = report.outcome


def loky_run(root: Path, methods: list[str], name: str | None, run_listed: bool,
             verbose: bool) -> tuple[dict[str, str], list[str]]:
    import pytest

    files = [str(root / "tests" / f"test_process_executor_{m}.py")
             for m in methods if (root / "tests" / f"test_process_executor_{m}.py").exists()]
    plugin = _LokyPlugin(DIFFERENT["loky"], run_listed, name)
    if files:
        args = [*files, "-q" if not verbose else "-v", "-p", "no:cacheprovider",
                "--rootdir", str(root), "-o", "addopts=", "--loky-verbosity", "30",
                "--timeout", "120", "--tb", "short" if verbose else "line",
                # loky's own settings end the whole run after 60 s in one test
                "-o", "faulthandler_timeout=0", "-o", "faulthandler_exit_on_timeout=false"]
        pytest.main(args, plugins=[plugin])
    return plugin.outcomes, plugin.different


# ----------------------------------------------------------------------


def _method_of(test_id: str, methods: list[str]) -> str:
    for method in sorted(methods, key=len, reverse=True):
        if f"_{method}." in test_id or f"_{method}.py" in test_id or \
                test_id.lower().split("::")[0].endswith(f"_{method}"):
            return method
    return "?"


def report(suite: str, outcomes: dict[str, str], different: list[str], methods: list[str],
           seconds: float) -> list[str]:
    print(f"{suite}: start methods {','.join(methods)}; {seconds:.0f} s")
    print_per_method(outcomes, different, methods, lambda t: _method_of(t, methods))
    failed = sorted(t for t, o in outcomes.items() if o == "failed")
    for test_id in failed:
        print(f"  FAILED {test_id}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--suite", default="pebble,loky")
    parser.add_argument("--methods", default="fork,forkserver,spawn")
    parser.add_argument("-k", dest="name", default=None, help="only tests whose id has NAME")
    parser.add_argument("-v", dest="verbose", action="store_true")
    parser.add_argument("--all", action="store_true", help="run the listed tests too")
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    failed: list[str] = []
    for suite in args.suite.split(","):
        started = time.monotonic()
        if suite == "pebble":
            root = fetch("pebble", None, args.cache)
            tests = pebble_suite(root, methods)
            listed, to_run = [], unittest.TestSuite()
            for test in flatten(tests):
                if args.name and args.name not in test.id():
                    continue
                if _listed(test.id(), DIFFERENT["pebble"]) and not args.all:
                    listed.append(test.id())
                else:
                    to_run.addTest(test)
            runner = unittest.TextTestRunner(stream=sys.stderr, resultclass=OutcomeResult,
                                             verbosity=2 if args.verbose else 1)
            result = runner.run(to_run)
            assert isinstance(result, OutcomeResult)
            print(f"pebble {root.name.split('-', 1)[1]} test/test_process_pool_*.py")
            failed += report("pebble", result.outcomes, listed, methods,
                             time.monotonic() - started)
        elif suite == "loky":
            version = importlib.metadata.version("loky")
            root = fetch("loky", version, args.cache)
            _on_path(root)
            outcomes, listed = loky_run(root, [m for m in methods if m != "fork"], args.name,
                                        args.all, args.verbose)
            print(f"loky {version} tests/test_process_executor_*.py (no fork variant)")
            failed += report("loky", outcomes, listed, [m for m in methods if m != "fork"],
                             time.monotonic() - started)
        else:
            raise SystemExit(f"unknown suite {suite!r}: pebble or loky")
        if args.verbose:
            for name, why in DIFFERENT[suite].items():
                print(f"  different: {name}: {why}")
    return 1 if failed else 0


def _listed(test_id: str, listed: dict[str, str]) -> bool:
    """Whether a test is listed, by its method's name or as Class.method."""
    parts = test_id.rsplit(".", 2)
    return parts[-1] in listed or ".".join(parts[-2:]) in listed


if __name__ == "__main__":
    sys.exit(main())
