"""Ending every process a child started, not only the child.

Each child leads its own process group (``runtime.child``) and is a child
subreaper (``PR_SET_CHILD_SUBREAPER``): while it lives, every process it
started, and every process those started, stays below it, even one that
called ``setsid`` (it leaves the group, not the tree) or whose parent exited
(it is reparented to the child, not to init). So the child's subtree is the
whole set of processes to end, and ``kill_tree`` ends it:

1. freeze: SIGSTOP the root (a stopped process cannot fork; a fork racing
   with the signal is restarted by the kernel after it), then every
   descendant, again and again until a listing finds no new one;
2. SIGKILL every descendant, the root's process group, then the root.

Everything is one pass of non-blocking system calls (signals and reads of
``/proc``), so the supervisor can run it on its event loop. What it cannot
catch: a process reparented above the child because the child died first in
another way (the kernel's OOM killer, the pool's own death), which only a
cgroup would hold; see README ("no descendant outlives its child").
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil  # type: ignore[import-untyped]

#: Listings before giving up on a fixpoint (each finds the processes forked
#: before the previous round's SIGSTOPs landed; two suffice in practice).
_FREEZE_ROUNDS = 8


def _signal(proc: psutil.Process, signum: int) -> None:
    import psutil

    try:
        proc.send_signal(signum)  # psutil checks the pid still names the same process
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        pass


def _below(root: psutil.Process) -> list[psutil.Process]:
    import psutil

    try:
        return [p for p in root.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def descendants(pid: int) -> list[psutil.Process]:
    """The live (not zombie) processes below ``pid``."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return []
    return _below(root)


def has_children(pid: int) -> bool:
    """Whether ``pid`` has a child, read cheaply from ``/proc`` (True if it cannot say).

    Below a subreaper no child means no descendant at all (every orphan is
    reparented to it), so most kills need no psutil scan of every process.
    """
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                if f.read().strip():
                    return True
    except FileNotFoundError:
        # Gone (psutil would find nothing either), or a kernel without
        # CONFIG_PROC_CHILDREN: then psutil looks.
        return os.path.exists(f"/proc/{pid}")
    except OSError:
        return True
    return False


def kill_descendants(pid: int, *, stop_root: bool) -> int:
    """Freeze, then SIGKILL, every process below ``pid``; return how many.

    ``stop_root`` also SIGSTOPs ``pid`` first (the supervisor's kill; the
    child cleaning up after itself cannot stop itself). The root itself is
    not killed here. psutil is imported only when there is a child.
    """
    if stop_root:
        try:
            os.kill(pid, signal.SIGSTOP)  # the caller holds a pidfd: pid is not reused
        except ProcessLookupError:
            return 0
    if not has_children(pid):
        return 0
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return 0
    frozen: dict[int, psutil.Process] = {}
    for _ in range(_FREEZE_ROUNDS):
        new = [p for p in _below(root) if p.pid not in frozen]
        if not new:
            break
        for proc in new:
            _signal(proc, signal.SIGSTOP)
            frozen[proc.pid] = proc
    for proc in frozen.values():
        _signal(proc, signal.SIGKILL)
    return len(frozen)


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid`` (the child's), if it still exists."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
