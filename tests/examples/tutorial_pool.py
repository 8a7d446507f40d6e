"""The tutorial's design (models/README.md, "Check your own design").

A supervisor keeps one worker process and a queue of jobs. When the worker
exits it looks at the exit status, as many hand-written supervisors do:

    if proc.returncode > 0:      # the worker crashed: start a new one
        restart()

A worker killed by a signal (the OOM killer's SIGKILL) has a *negative*
return code, so it is never replaced, and the queued jobs wait forever. The
fix compares with ``!= 0``. ``restart_on_signal`` chooses the version.

    wayout check --design tutorial_pool.py:RestartingPool                  # exit 1
    wayout check --design tutorial_pool.py:RestartingPool \\
                 --param restart_on_signal=true                           # exit 0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from models.design import Design, Step


class PoolState(NamedTuple):
    worker: str  # "none" | "starting" | "idle" | "busy"
    queued: int  # jobs waiting for the worker
    done: int  # jobs finished
    submitted: int
    deaths_left: int  # how many more times the world may kill or crash the worker


class RestartingPool(Design[PoolState]):
    name = "restarting-pool"
    title = "one worker, restarted when its exit status is > 0"

    def __init__(self, jobs: int = 2, deaths: int = 1, restart_on_signal: bool = False) -> None:
        self.jobs = jobs
        self.deaths = deaths
        self.restart_on_signal = restart_on_signal

    def parameters(self) -> str:
        return (f"jobs={self.jobs} deaths={self.deaths} "
                f"restart_on_signal={self.restart_on_signal}")

    def initial(self) -> PoolState:
        return PoolState("starting", 0, 0, 0, self.deaths)

    def successors(self, s: PoolState) -> Iterator[Step[PoolState]]:
        if s.submitted < self.jobs:
            yield Step(f"user submits job {s.submitted}",
                       s._replace(submitted=s.submitted + 1, queued=s.queued + 1))
        if s.worker == "starting":
            yield Step("the worker starts", s._replace(worker="idle"))
        if s.worker == "idle" and s.queued:
            yield Step("the worker takes a job", s._replace(worker="busy", queued=s.queued - 1))
        if s.worker == "busy":
            yield Step("the worker finishes its job", s._replace(worker="idle", done=s.done + 1))
        if s.worker in ("idle", "busy") and s.deaths_left:
            # A job the worker held goes back to the queue (the supervisor requeues it).
            requeued = s.queued + (s.worker == "busy")
            died = s._replace(queued=requeued, deaths_left=s.deaths_left - 1)
            yield Step("the worker crashes (exit status 1)", died._replace(worker="starting"),
                       spawns=1)
            replaced = "starting" if self.restart_on_signal else "none"
            yield Step("the OOM killer SIGKILLs the worker (exit status -9)",
                       died._replace(worker=replaced), spawns=int(self.restart_on_signal))

    def quiescent(self, s: PoolState) -> bool:
        return s.queued == 0 and s.worker in ("idle", "starting")

    def describe(self, s: PoolState) -> str:
        return (f"worker: {s.worker}\njobs queued {s.queued}, done {s.done} "
                f"of {s.submitted} submitted")
