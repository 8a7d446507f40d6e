"""What a closed pool may not leave behind: processes and file descriptors.

Used wherever wayout promises "nothing left running": the soak, the demo and
the tests. multiprocessing's forkserver and resource tracker live as long as
this process, not as long as a pool, so ``start_helpers()`` starts them first
(the forkserver as wayout starts it) and they are never counted. Descendants
are found recursively, so a child forked by the forkserver counts as ours; a
zombie counts too (nobody reaped it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil  # type: ignore[import-untyped]

from runtime.process import ensure_forkserver

T = TypeVar("T")


def start_helpers() -> None:
    """Start multiprocessing's per-process helpers, so they are not taken for leaks."""
    ensure_forkserver()  # starts the resource tracker first


def is_multiprocessing_helper(proc: psutil.Process) -> bool:
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return "multiprocessing.forkserver" in cmdline or "multiprocessing.resource_tracker" in cmdline


def live_descendants() -> list[psutil.Process]:
    """Every descendant process but multiprocessing's helpers, zombies included."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        if is_multiprocessing_helper(proc):
            continue
        try:
            proc.status()
        except psutil.NoSuchProcess:
            continue
        found.append(proc)
    return found


def descendants() -> dict[int, str]:
    """``live_descendants()`` as pid -> a description."""
    found = {}
    for proc in live_descendants():
        try:
            found[proc.pid] = f"pid {proc.pid} {proc.name()} ({proc.status()})"
        except psutil.NoSuchProcess:
            continue
    return found


def open_fds() -> dict[int, str]:
    """This process's open file descriptors, fd -> what it points to."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the descriptor of the listing itself, closed already
    return fds


@dataclass(frozen=True)
class Leaks:
    processes: tuple[str, ...]
    fds: tuple[str, ...]

    @property
    def none(self) -> bool:
        return not self.processes and not self.fds


class Baseline:
    """The processes and descriptors that exist now; ``leaks()`` names what is new."""

    def __init__(self) -> None:
        start_helpers()
        self.processes = descendants()
        self.fds = open_fds()

    def leaks(self) -> Leaks:
        procs = tuple(what for pid, what in descendants().items() if pid not in self.processes)
        fds = tuple(f"fd {fd} -> {target}" for fd, target in open_fds().items()
                    if self.fds.get(fd) != target)
        return Leaks(procs, fds)


def measure(run: Callable[[], T]) -> tuple[T, Leaks]:
    """Run ``run`` and return its value with what it left behind."""
    baseline = Baseline()
    value = run()
    return value, baseline.leaks()
