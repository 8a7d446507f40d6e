"""What a closed pool leaves behind: processes and file descriptors (must be none).

``measure(run)`` starts multiprocessing's own helpers first (the forkserver
and the resource tracker live as long as this process, not as long as a
pool), takes the descendants and open descriptors, runs ``run``, and counts
what is new afterwards. Descendants are found recursively, so a child forked
by the forkserver counts as ours; a zombie counts too (nobody reaped it).
"""

from __future__ import annotations

import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil  # type: ignore[import-untyped]

T = TypeVar("T")


@dataclass(frozen=True)
class Leaks:
    processes: tuple[str, ...]
    fds: tuple[str, ...]

    @property
    def none(self) -> bool:
        return not self.processes and not self.fds


def descendants() -> dict[int, str]:
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            found[proc.pid] = f"pid {proc.pid} ({proc.status()})"
        except psutil.NoSuchProcess:
            continue
    return found


def open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the descriptor of the listing itself, closed already
    return fds


def measure(run: Callable[[], T]) -> tuple[T, Leaks]:
    multiprocessing.resource_tracker.ensure_running()
    multiprocessing.forkserver.ensure_running()
    procs_before = descendants()
    fds_before = open_fds()
    value = run()
    procs = tuple(desc for pid, desc in descendants().items() if pid not in procs_before)
    fds = tuple(f"fd {fd} -> {target}" for fd, target in open_fds().items()
                if fds_before.get(fd) != target)
    return value, Leaks(procs, fds)
