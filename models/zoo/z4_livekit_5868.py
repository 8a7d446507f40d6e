"""Z4 — LiveKit Python #5868: an unbounded wait for a warm process.

``launch_job`` awaited ``warmed_proc_queue.get()`` with no timeout. When every
spawn failed, jobs waited forever (fixed by bounded retries, #5874).

This model also shows why "way out" alone is not enough. Way out asks whether
*some* sequence of events leads to quiescence, and here one always does: the
next spawn may succeed. The wedge needs a world that keeps failing, which
only a deadline on every non-final job state rules out. So the property this
design breaks is the safety invariant "every waiting job has a deadline".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.design import SAFETY, Design, Step


class Z4State(NamedTuple):
    proc: str  # "" | "spawning" | "retry_wait" | "warm"
    waiting: int
    running: int
    submitted: int


class LiveKit5868(Design[Z4State]):
    name = "z4-livekit-5868"
    title = "LiveKit #5868: launch_job awaits the warm queue with no timeout"
    expected: str | None = SAFETY
    source = "livekit/agents #5868 (fixed by #5874)"

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def parameters(self) -> str:
        return f"jobs={self.jobs}"

    def initial(self) -> Z4State:
        return Z4State("", 0, 0, 0)

    def successors(self, s: Z4State) -> Iterator[Step[Z4State]]:
        if s.proc == "":
            yield Step("pool spawns a process", s._replace(proc="spawning"), spawns=1)
        elif s.proc == "spawning":
            yield Step("the process warms up", s._replace(proc="warm"))
            yield Step("the spawn fails", s._replace(proc="retry_wait"))
        elif s.proc == "retry_wait":
            yield Step("retry delay passes", s._replace(proc=""), time_passed=True)
        if s.submitted < self.jobs:
            yield Step(f"user submits job {s.submitted}: launch_job awaits queue.get()",
                       s._replace(submitted=s.submitted + 1, waiting=s.waiting + 1))
        if s.waiting and s.proc == "warm":
            yield Step("a waiting job gets the warm process",
                       s._replace(proc="", waiting=s.waiting - 1, running=s.running + 1))
        if s.running:
            yield Step("a job finishes", s._replace(running=s.running - 1))

    def quiescent(self, s: Z4State) -> bool:
        return s.waiting == 0 and s.running == 0 and s.proc == "warm"

    def invariants(self, s: Z4State) -> Sequence[str]:
        if s.waiting:
            return [f"{s.waiting} job(s) wait for a warm process with no deadline "
                    "(queue.get() without a timeout)"]
        return ()

    def describe(self, s: Z4State) -> str:
        proc = {"": "none", "spawning": "spawning", "retry_wait": "spawn failed, retry later",
                "warm": "warm"}[s.proc]
        return f"process: {proc}\njobs waiting {s.waiting} (no deadline), running {s.running}"
