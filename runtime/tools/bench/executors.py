"""The competitors: ProcessPoolExecutor and loky, made and handled the same way.

loky is the ``bench`` extra: it is imported here, inside ``make_loky``, so
that everything else works without it.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import select
import tempfile
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from runtime.tools.bench import jobs
from runtime.tools.bench.results import LOKY, PPE

#: How long the holding job stays busy (the measure kills its pool well before).
HOLD_SECONDS = 60.0
#: How long the FIFO handshake may take before the bench gives up on it.
HANDSHAKE_TIMEOUT_S = 30.0


class Unavailable(Exception):
    """The implementation cannot be measured here (e.g. loky is not installed)."""


def loky_missing() -> str | None:
    """Why loky cannot be measured, or None if it can."""
    try:
        import loky  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "loky is not installed (pip install 'wayout[bench]')"
    return None


def make(impl: str, workers: int, start_method: str) -> Executor:
    if impl == PPE:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(start_method),
            # If wayout started the forkserver, its processes begin with SIGTERM
            # blocked, and a broken executor's terminate() would hang (see the job).
            initializer=jobs.unblock_termination,
        )
    if impl == LOKY:
        return make_loky(workers)
    raise ValueError(f"unknown executor {impl!r}")


def make_loky(workers: int) -> Executor:
    why = loky_missing()
    if why is not None:
        raise Unavailable(why)
    import loky

    # loky's own start method ("loky": fork + exec, a clean interpreter like spawn);
    # that is what its users get. No idle timeout, so workers stay warm.
    executor: Executor = loky.ProcessPoolExecutor(max_workers=workers, timeout=None)
    return executor


def broken_errors() -> tuple[type[BaseException], ...]:
    """What a pending future raises once a worker of its executor died."""
    errors: list[type[BaseException]] = [BrokenProcessPool]
    try:
        from loky.process_executor import (  # type: ignore[import-untyped]
            TerminatedWorkerError,
        )
    except ImportError:
        pass
    else:
        errors.append(TerminatedWorkerError)
    return tuple(errors)


def warm(executor: Executor, workers: int) -> set[int]:
    """Make the executor start every worker (ProcessPoolExecutor starts them on demand).

    ``workers`` jobs that each sleep a little are submitted at once, so each
    needs its own worker. Returns the worker pids.
    """
    futures = [executor.submit(jobs.pause, 0.05) for _ in range(workers)]
    for f in futures:
        f.result(timeout=60)
    return worker_pids(executor)


def worker_pids(executor: Executor) -> set[int]:
    # Both executors keep ``_processes`` (pid -> process); there is no public way.
    processes: dict[int, Any] = getattr(executor, "_processes", None) or {}
    return set(processes)


def occupy_one(executor: Executor) -> tuple[Future[Any], int]:
    """Submit a job that stays busy; return its future and its worker's pid.

    The job names its worker through a FIFO: opening the reading end blocks
    until the job opened the writing end, so nothing polls.
    """
    with tempfile.TemporaryDirectory(prefix="wayout-bench-") as tmp:
        fifo = os.path.join(tmp, "hold")
        os.mkfifo(fifo)
        future = executor.submit(jobs.hold, fifo, HOLD_SECONDS)
        # Non-blocking open, then wait for the line with a bound: a job that
        # never reports must not hang the bench.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = b""
            while not data.endswith(b"\n"):
                readable, _, _ = select.select([fd], [], [], HANDSHAKE_TIMEOUT_S)
                if not readable:
                    raise TimeoutError("the holding job did not report its worker's pid")
                chunk = os.read(fd, 64)
                if not chunk:
                    break  # the job closed the FIFO: the line is complete or never comes
                data += chunk
        finally:
            os.close(fd)
    if not data.endswith(b"\n"):
        raise RuntimeError(f"the holding job reported {data!r}, not its pid")
    return future, int(data)
