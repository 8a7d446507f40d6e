"""Z5 — a hot respawn loop: LiveKit #4857, CPython bpo-43306, circus #1157.

The initializer fails every time (a bad import, a missing model file). The
pool respawns at once, forever: spawn, fail, spawn, with no time passing. It
burns a CPU and never tells callers, who keep waiting while the pool says it
is available.

``backoff=True`` models the remedy (Erlang/OTP restart intensity, systemd's
StartLimitBurst): after ``max_restarts`` failures with no time passing the
pool backs off on a timer and reports itself unavailable; it passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.design import NO_HOT_LOOP, Design, Goal, Step


class Z5State(NamedTuple):
    proc: str  # "" | "initializing"
    failures: int  # failures since time last passed (restart intensity)
    backing_off: bool
    waiting: int
    submitted: int


class HotRespawn(Design[Z5State]):
    name = "z5-hot-respawn"
    title = "LiveKit #4857 / bpo-43306 / circus #1157: a failing initializer respawned at once"
    expected: str | None = NO_HOT_LOOP
    source = "livekit/agents #4857, CPython bpo-43306, circus-tent/circus #1157"

    def __init__(self, jobs: int = 1, *, backoff: bool = False, max_restarts: int = 2) -> None:
        self.jobs = jobs
        self.backoff = backoff
        self.max_restarts = max_restarts
        if backoff:
            self.name = "z5-fixed-backoff"
            self.title = "the same pool with restart intensity and a back-off timer"
            self.expected = None

    def parameters(self) -> str:
        return f"jobs={self.jobs}" + (f" max_restarts={self.max_restarts}" if self.backoff else "")

    def initial(self) -> Z5State:
        return Z5State("", 0, False, 0, 0)

    def successors(self, s: Z5State) -> Iterator[Step[Z5State]]:
        if s.proc == "" and not s.backing_off:
            yield Step("pool spawns a child", s._replace(proc="initializing"), spawns=1)
        if s.proc == "initializing":
            failed = s._replace(proc="")
            if self.backoff:  # the pre-fix pool counts nothing
                failed = failed._replace(failures=s.failures + 1,
                                         backing_off=s.failures + 1 > self.max_restarts)
            yield Step("the initializer raises; the child exits", failed)
        if s.backing_off:
            # Time passes: the restart intensity window starts over.
            yield Step("back-off timer fires: retry", s._replace(backing_off=False, failures=0),
                       time_passed=True)
        if s.submitted < self.jobs:
            yield Step(f"user submits job {s.submitted}",
                       s._replace(submitted=s.submitted + 1, waiting=s.waiting + 1))
        if self.backoff and s.backing_off and s.waiting:
            yield Step("waiting jobs fail: the pool is backing off", s._replace(waiting=0))

    def quiescent(self, s: Z5State) -> bool:
        # Nothing ever warms up: only a pool that backs off on a timer, with
        # every caller told, is at rest.
        return s.backing_off and s.waiting == 0

    def available(self, s: Z5State) -> bool:
        return not s.backing_off if self.backoff else True

    def goals(self) -> Sequence[Goal[Z5State]]:
        return (Goal(
            "honest_availability",
            when=self.available,
            reach=lambda s: not self.available(s) or s.proc == "ready",
            target="a warm child, or availability turned false",
            doc="While the pool says it is available, it must warm a child or stop saying so.",
        ),)

    def describe(self, s: Z5State) -> str:
        proc = "initializing" if s.proc else "no child"
        state = "backing off (unavailable)" if s.backing_off else "running (available)"
        counted = f"failures since time passed: {s.failures}" if self.backoff else (
            "failures: not counted")
        return f"pool {state}, {proc}\n{counted}\njobs waiting {s.waiting}"
