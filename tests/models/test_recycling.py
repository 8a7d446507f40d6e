"""wayout-recycle's properties, each caught with a fault planted in the real core.

In the world's own record (the SendJob commands that reached each process,
never the core's ``jobs_done``): no process runs more than
``max_jobs_per_child`` jobs, and one that ran that many is retired (asked to
stop, or killed) as soon as it owes nothing. And a child may lie, reporting on
a job it does not run (``foreign_reports``): the core must take that as a
protocol violation, and a job settled by such a report breaks safety.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fsm import events as ev
from fsm.core import SupervisorCore
from models import registry
from models.explorer import explore
from models.report import format_violation
from models.wayout import WayoutRecycle, WayoutServing

#: What each property says in a violation.
OVER_LIMIT = "past max_jobs_per_child=1: the child should have been retired"
NOT_RETIRED = "but was neither asked to stop nor killed: it is not retired"
FOREIGN = "which does not run it"
NEEDLES = (OVER_LIMIT, NOT_RETIRED, FOREIGN)


def caught_only(design: WayoutRecycle, needle: str) -> str:
    """The design breaks safety, and only safety, with ``needle`` in its first
    violation (in full) and neither of the other two properties' words."""
    result = explore(design)
    assert sorted(result.found) == ["safety"], [v.message for v in result.violations]
    message = format_violation(result.violations[0])
    assert needle in message, message
    for other in NEEDLES:
        if other != needle:
            assert other not in message, message
    return message


def test_the_correct_core_passes_the_recycling_model() -> None:
    result = explore(WayoutRecycle(jobs=1))
    assert result.as_expected, [v.message for v in result.violations]


def test_the_recycling_model_runs_by_default() -> None:
    entry = registry.get("wayout-recycle")
    assert entry.name in registry.names()
    design = entry.design
    assert isinstance(design, WayoutRecycle)
    assert design.config.max_jobs_per_child == 1 and design.foreign_reports
    assert (design.config.max_children, design.jobs) == (2, registry.RECYCLE_JOBS)


def test_a_child_that_finished_its_last_job_and_is_kept_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    # recycle-never: jobs done are not counted, so the child is never stopped.
    def uncounted(self: SupervisorCore, job: Any) -> None:
        child = self.children[job.child] if job.child is not None else None
        self._detach(job)
        if child is not None and child.state == "busy":
            self._fire(child, "finish")

    plant("_finish_job", uncounted)
    caught_only(WayoutRecycle(jobs=1), NOT_RETIRED)


def test_a_dispatch_that_sends_its_job_twice_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    # Each SendJob sent twice: the process is sent two jobs (the same one) where
    # max_jobs_per_child=1 allows one. Nothing else sees it: the world's record
    # of the ack it owes is the same.
    reconcile = SupervisorCore._reconcile

    def twice(self: SupervisorCore) -> None:
        start = len(self._out)
        reconcile(self)
        self._out[start:] = [d for c in self._out[start:]
                             for d in ((c, c) if isinstance(c, ev.SendJob) else (c,))]

    plant("_reconcile", twice)
    caught_only(WayoutRecycle(jobs=1), OVER_LIMIT)


def test_a_result_from_a_child_that_does_not_run_the_job_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    # result-from-stale-child: a report is taken from any child, not only the
    # one the job is on. Only a lying child shows it.
    def any_child(self: SupervisorCore, e: Any, what: str, allowed: Any) -> Any:
        if e.child not in self.children:
            return None
        job = self.jobs.get(e.job)
        if job is not None and job.state in allowed:
            return job
        return None

    plant("_job_for", any_child)
    assert explore(WayoutServing(jobs=1)).as_expected  # the honest world never lies
    caught_only(WayoutRecycle(jobs=1), FOREIGN)


def test_a_lie_is_a_protocol_violation_for_the_correct_core() -> None:
    design = WayoutRecycle(jobs=1)
    w = design.initial()
    for e in (ev.Spawned(now=0.0, child=0, pid=100), ev.Hello(now=0.0, child=0),
              ev.Ready(now=0.0, child=0), ev.Submit(now=0.0, job=0),
              ev.JobAck(now=0.0, child=0, job=0), ev.Spawned(now=0.0, child=1, pid=101)):
        assert e in design.events(w)
        w = design.apply(w, e).state
    lie = ev.JobDone(now=0.0, child=1, job=0, result=None)
    assert lie in design.events(w)  # child 1 reports on child 0's job
    commands = w.core.clone().handle(lie)
    assert ev.Kill(child=1, reason="protocol violation: result for job 0, which it does not "
                   "hold", cause="protocol") in commands
    step = design.apply(w, lie)
    assert step.broken == () and "a lie" in step.label
    assert step.state.jobs[0].outcome == ""  # job 0 still runs on child 0
