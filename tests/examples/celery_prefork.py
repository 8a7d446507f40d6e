"""A Celery prefork worker loses a task when its pool process dies.

With Celery's default early acknowledgement (``acks_late=False``) the worker
acks a task to the broker when a pool process *receives* it. If that process
is then killed (the OOM killer, a segfault in a C extension), the main worker
forks a replacement, but the task is gone: the broker thinks it delivered
it, no process runs it, and a caller waiting on ``AsyncResult.get()`` waits
forever (celery/celery #3802, and the "tasks lost on worker death" entries of
its FAQ). The fix acknowledges late and rejects on a lost worker
(``acks_late=True, task_reject_on_worker_lost=True``): the broker redelivers
the task.

    wayout check --design celery_prefork.py:PreforkWorker                         # exit 1
    wayout check --design celery_prefork.py:PreforkWorker --param acks_late=true  # exit 0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from models.design import Design, Step


class Worker(NamedTuple):
    broker: int  # tasks the broker still holds (unacked or not yet delivered)
    process: str  # the pool process: "idle" | "running" | "forking"
    held_acked: bool  # the running task was acked already
    done: int
    lost: int  # tasks acked whose process died: nobody will ever run them
    kills_left: int


class PreforkWorker(Design[Worker]):
    name = "celery-prefork"
    title = "Celery prefork: a task acked early is lost when its pool process is killed"
    source = "celery/celery #3802; docs: acks_late, task_reject_on_worker_lost"

    def __init__(self, tasks: int = 2, kills: int = 1, acks_late: bool = False) -> None:
        self.tasks = tasks
        self.kills = kills
        self.acks_late = acks_late

    def parameters(self) -> str:
        return f"tasks={self.tasks} kills={self.kills} acks_late={self.acks_late}"

    def initial(self) -> Worker:
        return Worker(self.tasks, "idle", False, 0, 0, self.kills)

    def successors(self, s: Worker) -> Iterator[Step[Worker]]:
        if s.process == "idle" and s.broker:
            yield Step("a pool process receives a task" + ("" if self.acks_late else
                       " (acked to the broker now)"),
                       s._replace(process="running", held_acked=not self.acks_late,
                                  broker=s.broker - (not self.acks_late)))
        if s.process == "running":
            yield Step("the task finishes (acked now if not before)",
                       s._replace(process="idle", held_acked=False, done=s.done + 1,
                                  broker=s.broker - (not s.held_acked)))
            if s.kills_left:
                # The unacked task stays with the broker, which redelivers it.
                yield Step("the OOM killer SIGKILLs the pool process",
                           s._replace(process="forking", held_acked=False,
                                      kills_left=s.kills_left - 1,
                                      lost=s.lost + s.held_acked))
        if s.process == "forking":
            yield Step("the worker forks a replacement process", s._replace(process="idle"),
                       spawns=1)

    def quiescent(self, s: Worker) -> bool:
        # Every task has run; a lost one keeps its caller waiting forever.
        return s.done + s.lost == self.tasks and s.lost == 0

    def invariants(self, s: Worker) -> list[str]:
        return []

    def describe(self, s: Worker) -> str:
        return (f"pool process: {s.process}\nbroker holds {s.broker}; done {s.done}; "
                f"lost {s.lost} (callers wait forever)")
