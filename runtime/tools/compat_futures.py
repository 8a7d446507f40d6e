"""Run the interpreter's own ``test_concurrent_futures`` ProcessPoolExecutor tests
against ``runtime.Executor``, and report the counts.

    python -m runtime.tools.compat_futures [--methods fork,forkserver,spawn] [-k NAME] [-v]
        [--slice] [--locate] [--if-installed]

The tests are CPython's, found where the interpreter keeps them (its ``test``
package, or Debian's ``libpython3.X-testsuite`` under /usr/lib/python3.X);
nothing of them is copied here. Every ``ProcessPoolExecutor`` the tests make
in this process is a ``runtime.Executor`` (the tests' own class attribute and
``concurrent.futures.ProcessPoolExecutor`` are replaced); tests that start a
fresh interpreter with a script of their own still use the real one there, and
are listed below as not applicable.

``DIFFERENT`` lists the tests that fail on purpose, each with its reason (the
README's table of deliberate differences). A test listed there that passes is
reported, so that the list does not rot. Exit status 0 when no test outside
the list failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import importlib.util
import sys
import tempfile
import time
import unittest
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

#: test method name (or Class.method, the class without its start-method prefix)
#: -> why runtime.Executor behaves differently on purpose.
DIFFERENT: dict[str, str] = {
    "test_killed_child": "a dead worker fails only its job (ChildDied, a BrokenProcessPool); "
                         "the executor goes on instead of breaking",
    "test_processes_terminate": "executor._processes does not exist: children are the pool's",
    "test_context_manager_shutdown": "executor._processes does not exist",
    "test_del_shutdown": "executor._processes does not exist",
    "test_shutdown_no_wait": "executor._processes does not exist",
    "test_saturation": "executor._processes does not exist; every worker is prewarmed",
    "test_idle_process_reuse_one": "executor._processes does not exist; every worker is "
                                   "prewarmed (num_idle = max_workers)",
    "test_idle_process_reuse_multiple": "executor._processes does not exist; every worker is "
                                        "prewarmed",
    "test_max_tasks_per_child": "executor._processes does not exist",
    "test_max_tasks_early_shutdown": "executor._processes does not exist",
    "test_ressources_gced_in_workers": "its Manager's objects are checked in the executor's "
                                       "own workers through _processes",
    "test_crash": "a dead worker fails only its job: the crash tests expect BrokenProcessPool "
                  "for the whole executor and later submits",
    "test_shutdown_deadlock": "a dead worker fails only its job; the executor is not broken",
    "test_shutdown_deadlock_pickle": "a dead worker fails only its job; the executor is not "
                                     "broken",
    "test_initializer": "a failing initializer is retried under restart intensity, not a "
                      "BrokenProcessPool at once",
    "test_exit_at_task_unpickle": "a job whose unpickling in the child raises fails only "
                                  "itself (JobFailed), not the whole executor",
    "test_error_at_task_unpickle": "a job whose unpickling in the child raises fails only "
                                   "itself with its error (JobFailed), not the whole executor",
    "test_exit_during_func_exec_on_worker": "a job's SystemExit reaches the caller as "
                                            "JobFailed: a job must not exit the caller",
    "test_exit_during_result_pickle_on_worker": "a result whose pickling raises SystemExit is "
                                                "the job's JobFailed, never re-raised",
    "test_error_during_result_pickle_on_worker": "a result that cannot be pickled is a "
                                                 "JobFailed naming its type (remote_type), "
                                                 "not the PicklingError itself",
    "test_error_during_result_unpickle_in_result_handler": "a result that cannot be unpickled "
                                                           "in the parent fails only its job "
                                                           "(JobFailed)",
    "test_exit_during_result_unpickle_in_result_handler": "a result whose unpickling raises "
                                                          "SystemExit fails only its job "
                                                          "(JobFailed)",
    "test_traceback": "the exception is of a class derived from its type and JobFailed "
                      "(type(exc) is not RuntimeError), its cause a RemoteTraceback",
    "test_max_tasks_per_child_defaults_to_spawn_context": "the start method is the configured "
                                                          "one; max_tasks_per_child does not "
                                                          "change it",
    "test_interpreter_shutdown": "not applicable: runs a fresh interpreter with the real PPE",
    "test_run_after_shutdown": "not applicable: runs a fresh interpreter with the real PPE",
    "test_submit_after_interpreter_shutdown": "not applicable: runs a fresh interpreter with "
                                              "the real PPE",
    "test_hang_issue39205": "not applicable: runs a fresh interpreter with the real PPE",
    "test_cancel_futures_wait_false": "not applicable: runs a fresh interpreter with the real "
                                      "PPE",
}


#: The bounded slice ``make test`` runs under every start method (``--slice``):
#: submit with keywords, map, errors, pickling, freed references, cancellation,
#: waiting (each starts an executor of 5 workers: about 1 s under fork, 3 s under
#: spawn); the tests whose own sleeps make them slow are left to the full run.
SLICE: tuple[str, ...] = (
    "test_submit_keyword", "test_map_exception", "test_map_chunksize",
    "test_no_stale_references", "test_free_reference", "test_cancel_futures",
    "test_error_at_task_pickle", "test_error_during_func_exec_on_worker",
    "test_all_completed", "test_free_reference_yielded_future",
)


def version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find() -> Path | None:
    """The directory of the ``test`` package that has test_concurrent_futures, if any."""
    candidates = []
    spec = importlib.util.find_spec("test")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    candidates.append(Path(f"/usr/lib/python{version()}/test"))
    for directory in candidates:
        if (directory / "test_concurrent_futures.py").exists() or \
                (directory / "test_concurrent_futures").is_dir():
            return directory
    return None


def missing_message() -> str:
    return (f"no test_concurrent_futures for Python {version()}: install CPython's test "
            f"package (Debian: apt-get install libpython{version()}-testsuite; `make setup` "
            f"does it when run as root)")


def load(directory: Path) -> list[Any]:
    """Import the tests from ``directory`` as the ``test`` package; their modules."""
    link_dir = Path(tempfile.mkdtemp(prefix="wayout-compat-"))
    (link_dir / "test").symlink_to(directory, target_is_directory=True)
    for name in [m for m in sys.modules if m == "test" or m.startswith("test.")]:
        del sys.modules[name]
    sys.path.insert(0, str(link_dir))
    package = directory / "test_concurrent_futures"
    if package.is_dir():  # 3.12+: a package of test modules
        names = sorted(p.stem for p in package.glob("test_*.py"))
        return [importlib.import_module(f"test.test_concurrent_futures.{n}") for n in names]
    return [importlib.import_module("test.test_concurrent_futures")]


def install(modules: list[Any]) -> None:
    """Make every ProcessPoolExecutor the tests make in this process a runtime.Executor."""
    from runtime import Executor

    concurrent.futures.ProcessPoolExecutor = Executor  # type: ignore[misc]
    for module in modules:
        for value in list(vars(module).values()):
            if isinstance(value, type) and \
                    getattr(value, "executor_type", None) is not None and \
                    "ProcessPool" in value.__name__:
                value.executor_type = Executor
        if getattr(module, "ProcessPoolExecutor", None) is not None:
            module.ProcessPoolExecutor = Executor


def selected(modules: list[Any], methods: set[str], name_filter: str | None,
             only: tuple[str, ...] | None = None) -> unittest.TestSuite:
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for module in modules:
        for test in flatten(loader.loadTestsFromModule(module)):
            cls = type(test).__name__
            ctx = getattr(test, "ctx", None)
            if "ProcessPool" not in cls or ctx not in methods:
                continue
            if name_filter and name_filter not in test.id():
                continue
            if only is not None and test.id().rsplit(".", 1)[-1] not in only:
                continue
            suite.addTest(test)
    return suite


def flatten(tests: Iterable[Any]) -> Iterator[unittest.TestCase]:
    """The test cases of a unittest suite, nested suites opened."""
    for test in tests:
        if isinstance(test, unittest.TestSuite):
            yield from flatten(test)
        else:
            yield test


def print_per_method(outcomes: dict[str, str], different: list[str], methods: Iterable[str],
                     method_of: Callable[[str], str]) -> None:
    """One line per start method: its tests, the deliberately different ones
    (``different``: ids, not run) and the outcomes of the others."""
    for method in methods:
        mine = Counter(o for t, o in outcomes.items() if method_of(t) == method)
        listed = sum(1 for t in different if method_of(t) == method)
        print(f"  {method}: {listed + sum(mine.values())} tests, {listed} deliberately "
              f"different (not run); {mine['passed']} passed, {mine['failed']} failed, "
              f"{mine['skipped']} skipped")


def method_of(test_id: str) -> str:
    """The start method of a test, from its class (ProcessPoolForkserverWaitTest...)."""
    cls = test_id.rsplit(".", 2)[-2]
    for method in ("forkserver", "fork", "spawn"):
        if cls.lower().startswith(f"processpool{method}"):
            return method
    return "?"


def reason_for(test: unittest.TestCase) -> str | None:
    method = test.id().rsplit(".", 1)[-1]
    return DIFFERENT.get(method)


class OutcomeResult(unittest.TextTestResult):
    """A unittest result that also records each test's outcome by id: passed,
    failed or skipped (an expected failure counts as passed, an unexpected
    success as failed). compat_suites reads pebble's results with it too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.outcomes[test.id()] = "passed"

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self.outcomes[test.id()] = "failed"

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self.outcomes[test.id()] = "failed"

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skipped"

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self.outcomes[test.id()] = "passed"

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.outcomes[test.id()] = "failed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="fork,forkserver,spawn")
    parser.add_argument("-k", dest="name", default=None, help="only tests whose id has NAME")
    parser.add_argument("-v", dest="verbose", action="store_true")
    parser.add_argument("--all", action="store_true", help="run the listed tests too")
    parser.add_argument("--slice", action="store_true",
                        help="only the bounded slice make test runs (SLICE)")
    parser.add_argument("--locate", action="store_true",
                        help="print where the tests are, or exit 2 if they are not installed")
    parser.add_argument("--if-installed", action="store_true",
                        help="if the tests are not installed, say so and exit 0 (nothing run)")
    args = parser.parse_args(argv)
    methods = set(args.methods.split(","))
    found = find()
    if found is None:
        print(("compat_futures: NOT RUN: " if args.if_installed else "") + missing_message(),
              file=sys.stderr)
        return 0 if args.if_installed and not args.locate else 2
    if args.locate:
        print(found)
        return 0
    directory = found
    modules = load(directory)
    install(modules)
    suite = selected(modules, methods, args.name, SLICE if args.slice else None)
    started = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2 if args.verbose else 1,
                                     resultclass=OutcomeResult)
    # Listed tests are not run: some would break what the executor guarantees
    # on purpose and then wait for a bound the test never set.
    to_run = unittest.TestSuite()
    listed: list[unittest.TestCase] = []
    for test in flatten(suite):
        if reason_for(test) is not None and not args.all:
            listed.append(test)
        else:
            to_run.addTest(test)
    result = runner.run(to_run)
    assert isinstance(result, OutcomeResult)
    counts = Counter(result.outcomes.values())
    unexpected = sorted(t for t, o in result.outcomes.items() if o == "failed")
    print(f"CPython {sys.version.split()[0]} test_concurrent_futures from {directory}")
    print(f"start methods: {','.join(sorted(methods))}; {time.monotonic() - started:.0f} s"
          + ("; the bounded slice (--slice)" if args.slice else ""))
    print_per_method(result.outcomes, [t.id() for t in listed], sorted(methods), method_of)
    print(f"ProcessPoolExecutor tests: {len(listed) + len(result.outcomes)}; "
          f"deliberately different (not run): {len(listed)}; run: {len(result.outcomes)}: "
          f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    for test_id in unexpected:
        print(f"  FAILED {test_id}")
    if args.verbose:
        for test in listed:
            print(f"  different: {test.id()}: {reason_for(test)}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
