"""The functions the benchmarked pools run in their children.

Kept tiny and importing only the standard library: a forkserver or spawn child
imports this module to unpickle a job, and that import must not weigh on the
figures.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def noop() -> None:
    """The empty job: what a round trip costs with no user work."""
    return None


def started_at() -> int:
    """The child's monotonic clock when user code starts (shared across processes on Linux)."""
    return time.monotonic_ns()


def pause(seconds: float) -> int:
    """Sleep, then return the pid: used to make an executor start all of its workers."""
    time.sleep(seconds)
    return os.getpid()


def hold(fifo_path: str, seconds: float) -> int:
    """Tell the parent which worker runs this (through a FIFO), then stay busy.

    Opening a FIFO for writing blocks until the parent opens it for reading,
    so the parent learns the busy worker's pid without polling.
    """
    with open(fifo_path, "wb", buffering=0) as fifo:
        fifo.write(f"{os.getpid()}\n".encode())
    time.sleep(seconds)
    return os.getpid()


def hang_in_first(marker_path: str) -> None:
    """An initializer that hangs in exactly one child: the first to create the marker.

    ``O_CREAT | O_EXCL`` is atomic, so of all the children of a pool only one
    wins; it sleeps until the supervisor kills it. A marker that exists
    already makes every child warm up normally (the "normal cold job" case).
    """
    try:
        fd = os.open(marker_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    time.sleep(3600)


def say_hello(conn: Any) -> None:
    """The floor's child: send one message over the pipe and exit."""
    conn.send_bytes(b"hello")
    conn.close()


def unblock_termination() -> None:
    """ProcessPoolExecutor's worker initializer: let SIGTERM and SIGINT through again.

    wayout starts multiprocessing's forkserver with both blocked (so that a
    group SIGTERM cannot kill its children mid-drain), and every process that
    forkserver makes inherits the mask; wayout's children unblock them, other
    users' do not. A ProcessPoolExecutor worker that cannot receive SIGTERM
    survives ``terminate()``, and the executor then waits for it forever once
    it is broken. One syscall per worker start: no figure moves.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
