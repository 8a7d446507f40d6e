"""Z3 — agents-js #2321 / LiveKit Python 1.8.9: a dead idle process is handed a job.

An idle warm process dies (SIGKILL, OOM) but stays in the warm queue until a
separate watcher notices. A job taken from the queue in that window is written
to the dead socket; the write succeeds (it is buffered) and the job is
reported launched. The job never started.

* agents-js: nothing retries; the job never gets an outcome (lost).
* LiveKit Python 1.8.9: the job ends FAILED ("process died") with no retry,
  although it provably never ran: the outcome does not tell the truth.

Property: every submitted job reaches exactly one outcome, and it is true. A
job that never started is retried (wayout requeues it: the child's ack comes
before user code, so a death before the ack proves it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.design import SAFETY, WAY_OUT, Design, Step

# Job status in the model.
UNSUBMITTED, WAITING, RUNNING, LAUNCHED_DEAD, DONE, FAILED = (
    "unsubmitted", "waiting", "running", "written to a dead socket", "done", "failed")


class Job(NamedTuple):
    status: str
    started: bool  # the truth: a live process received it


class Z3State(NamedTuple):
    warm: str  # "" (empty) | "alive" | "dead" (died, not yet noticed)
    jobs: tuple[Job, ...]
    crashes_left: int


class DeadIdleProcess(Design[Z3State]):
    """agents-js #2321: the job written to a dead process is lost."""

    name = "z3-agents-js-2321"
    title = "agents-js #2321: a job handed to a dead idle process is lost"
    expected: str | None = WAY_OUT
    source = "livekit/agents-js #2321"
    #: What happens to a job written to a dead socket once the death is noticed.
    on_dead_launch = ""  # nothing: lost

    def __init__(self, jobs: int = 1, crashes: int = 1) -> None:
        self.jobs = jobs
        self.crashes = crashes

    def parameters(self) -> str:
        return f"jobs={self.jobs} crashes={self.crashes}"

    def initial(self) -> Z3State:
        return Z3State("", (Job(UNSUBMITTED, False),) * self.jobs, self.crashes)

    def successors(self, s: Z3State) -> Iterator[Step[Z3State]]:
        def job(i: int, j: Job) -> tuple[Job, ...]:
            return (*s.jobs[:i], j, *s.jobs[i + 1:])

        if s.warm == "":
            yield Step("pool spawns a warm process", s._replace(warm="alive"), spawns=1)
        elif s.warm == "alive" and s.crashes_left:
            yield Step("idle warm process is SIGKILLed (OOM)",
                       s._replace(warm="dead", crashes_left=s.crashes_left - 1))
        elif s.warm == "dead":
            yield Step("watcher notices the dead process", s._replace(warm=""))
        submitted = False
        for i, j in enumerate(s.jobs):
            if j.status == UNSUBMITTED and not submitted:
                submitted = True  # ids in order
                yield Step(f"user submits job {i}", s._replace(jobs=job(i, Job(WAITING, False))))
            elif j.status == WAITING and s.warm:
                if s.warm == "alive":
                    yield Step(f"job {i} is launched on the warm process",
                               s._replace(warm="", jobs=job(i, Job(RUNNING, True))))
                else:
                    yield Step(f"job {i} is written to the dead process (the write succeeds)",
                               s._replace(warm="", jobs=job(i, Job(LAUNCHED_DEAD, False))))
            elif j.status == RUNNING:
                yield Step(f"job {i} finishes", s._replace(jobs=job(i, Job(DONE, True))))
                if s.crashes_left:
                    yield Step(f"job {i}'s process dies while running it", s._replace(
                        jobs=job(i, Job(FAILED, True)), crashes_left=s.crashes_left - 1))
            elif j.status == LAUNCHED_DEAD and self.on_dead_launch:
                yield Step(f"job {i}'s process is found dead: " + self.on_dead_launch,
                           s._replace(jobs=job(i, Job(FAILED, False))))

    def quiescent(self, s: Z3State) -> bool:
        return s.warm == "alive" and all(
            j.status in (UNSUBMITTED, DONE, FAILED) for j in s.jobs)

    def invariants(self, s: Z3State) -> Sequence[str]:
        return [f"job {i} was failed for a dead process, but it never started: "
                "it should have been retried"
                for i, j in enumerate(s.jobs) if j.status == FAILED and not j.started]

    def describe(self, s: Z3State) -> str:
        warm = {"": "empty", "alive": "1 live process", "dead": "1 DEAD process (unnoticed)"}
        lines = [f"warm queue: {warm[s.warm]}"]
        lines += [f"job {i}: {j.status}" + (" (never started)" if j.status in (
            LAUNCHED_DEAD, FAILED) and not j.started else "")
                  for i, j in enumerate(s.jobs) if j.status != UNSUBMITTED]
        return "\n".join(lines)


class DeadIdleProcessPy(DeadIdleProcess):
    """LiveKit Python 1.8.9: the job ends FAILED, although it never ran."""

    name = "z3-livekit-py-1.8.9"
    title = "LiveKit Python 1.8.9: a job handed to a dead idle process fails without a retry"
    expected = SAFETY
    source = "livekit/agents 1.8.9 ipc/proc_pool.py"
    on_dead_launch = "job FAILED, no retry"
