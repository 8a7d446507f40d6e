"""Z7 — gunicorn >= 22: a boot hang that is never killed.

The arbiter's reaper kills a worker whose heartbeat is older than ``timeout``.
The heartbeat file's *initial* time is wall-clock (seconds since 1970), while
the reaper compares it with monotonic time (seconds since boot). Until the
worker's first heartbeat its age is hugely negative, so a worker stuck while
booting is never timed out.

The model keeps the two clocks apart as the code does: ``elapsed`` is
monotonic time since the spawn, and the boot deadline the reaper effectively
enforces is ``initial_mtime + timeout`` read against the monotonic clock. With
``clock="monotonic"`` the initial time is taken from the same clock and the
design passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.design import SAFETY, Design, Step

#: Worker timeout (gunicorn's ``--timeout``), in model seconds.
TIMEOUT = 3
#: Wall-clock time at spawn minus monotonic time at spawn: about 54 years of
#: seconds since 1970 on a machine booted an hour ago.
WALL_MINUS_MONOTONIC = 1_700_000_000


class Z7State(NamedTuple):
    worker: str  # "" | "booting" | "hung" | "running"
    #: Monotonic seconds since the spawn, capped one past the timeout (all
    #: later values behave alike for a reaper that works).
    elapsed: int


class GunicornBoot(Design[Z7State]):
    name = "z7-gunicorn-boot"
    title = "gunicorn >= 22: wall-clock heartbeat start vs monotonic reaper: boot hangs live on"
    expected: str | None = SAFETY
    source = "benoitc/gunicorn >= 22 (workertmp initial mtime)"

    def __init__(self, *, clock: str = "wall") -> None:
        self.clock = clock
        if clock == "monotonic":
            self.name = "z7-fixed-monotonic"
            self.title = "the same arbiter with the heartbeat's initial time in monotonic time"
            self.expected = None

    def initial(self) -> Z7State:
        return Z7State("", 0)

    def boot_deadline(self, s: Z7State) -> int:
        """Seconds from now until the reaper would kill a worker that never beats."""
        start = -s.elapsed + (WALL_MINUS_MONOTONIC if self.clock == "wall" else 0)
        return start + TIMEOUT

    def successors(self, s: Z7State) -> Iterator[Step[Z7State]]:
        if s.worker == "":
            yield Step("arbiter spawns a worker", Z7State("booting", 0), spawns=1)
        elif s.worker in ("booting", "hung"):
            if s.worker == "booting":
                yield Step("worker finishes booting: first heartbeat", Z7State("running", 0))
                yield Step("worker hangs while booting", s._replace(worker="hung"))
            later = s._replace(elapsed=min(s.elapsed + 1, TIMEOUT + 1))
            if self.boot_deadline(later) <= 0:
                yield Step("reaper: heartbeat too old, kill and respawn", Z7State("", 0),
                           time_passed=True)
            else:
                yield Step("a second passes; the reaper finds the worker young", later,
                           time_passed=True)

    def quiescent(self, s: Z7State) -> bool:
        return s.worker == "running"

    def invariants(self, s: Z7State) -> Sequence[str]:
        if s.worker in ("booting", "hung") and self.boot_deadline(s) > TIMEOUT:
            years = self.boot_deadline(s) / (365.25 * 86400)
            return [f"the booting worker has no effective deadline: the reaper reads its age "
                    f"as {-self.boot_deadline(s) + TIMEOUT:,} s and would kill it in "
                    f"{years:.0f} years"]
        return ()

    def describe(self, s: Z7State) -> str:
        if not s.worker:
            return "no worker"
        if s.worker == "running":
            return "worker running (heartbeats)"
        return (f"worker {s.worker}, {s.elapsed} s since spawn\n"
                f"reaper's deadline in {self.boot_deadline(s):,} s")
