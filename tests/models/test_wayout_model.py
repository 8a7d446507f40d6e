"""wayout's own design: the real SupervisorCore in a model of the world.

It must pass every property; and the checker must be able to fail it: each
mutation below plants one historical kind of bug in the core (monkeypatched
for one test) and the explorer must catch it with the right property.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fsm import errors
from fsm import events as ev
from fsm.codec import ChildRecord, JobRecord, PoolRecord
from fsm.core import SupervisorCore
from models.design import NO_HOT_LOOP, SAFETY, WAY_OUT
from models.explorer import explore
from models.wayout import WayoutDesign, WayoutStalls, model_config


def small(**kwargs: Any) -> WayoutDesign:
    """One child, one job: a few thousand states, well under a second."""
    kwargs.setdefault("children", 1)
    kwargs.setdefault("idle", 1)
    kwargs.setdefault("jobs", 1)
    return WayoutDesign(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"children": 1, "idle": 1, "jobs": 0},
    {"children": 1, "idle": 1, "jobs": 1},
    {"children": 2, "idle": 1, "jobs": 1},
    {"children": 2, "idle": 2, "jobs": 1},
    {"children": 1, "idle": 1, "jobs": 1, "restarts": 0},
    {"children": 1, "idle": 1, "jobs": 1, "bad_messages": True, "memory": True},
], ids=repr)
def test_wayout_design_passes_small_bounds(kwargs: dict[str, Any]) -> None:
    result = explore(WayoutDesign(**kwargs))
    assert result.stats.complete
    assert result.violations == (), [v.message for v in result.violations]
    assert result.checked == (SAFETY, WAY_OUT, "honest_availability", "availability_returns",
                              "backoff_ends", NO_HOT_LOOP)


@pytest.mark.slow
def test_wayout_design_passes_the_default_bounds() -> None:
    # 2 children, 3 jobs, max_restarts 1: what `wayout check` verifies. Not in
    # make test's slice: test_check_cli's test_default_check_passes explores
    # this same model at these bounds through the command.
    result = explore(WayoutDesign(children=2, jobs=3, restarts=1))
    assert result.stats.complete
    assert result.violations == (), [v.message for v in result.violations]
    assert result.stats.states > 10_000


@pytest.mark.slow
def test_wayout_design_passes_with_recycling_and_two_idle() -> None:
    config = model_config(2, idle=2, restarts=1, max_jobs_per_child=1)
    result = explore(WayoutDesign(jobs=2, config=config))
    assert result.violations == (), [v.message for v in result.violations]


def test_the_world_offers_every_first_event() -> None:
    design = small(children=2, idle=2)
    labels = sorted(step.label for step in design.successors(design.initial()))
    assert labels == sorted([
        "child 0's process starts", "child 0's process cannot be started",
        "child 1's process starts", "child 1's process cannot be started",
        "time passes to t=1 (+1s): deadlines fire",
        "user submits job 0", "user calls drain()", "user calls close()",
    ])


def test_the_world_reaches_the_warm_target() -> None:
    design = small()
    w = design.initial()
    for event in (ev.Spawned(0.0, 0, 100), ev.Hello(0.0, 0), ev.Ready(0.0, 0)):
        w = design.apply(w, event).state
    assert design.quiescent(w)
    assert design.invariants(w) == []


@pytest.mark.parametrize("restarts", [
    0,  # 41,208 states plain: seconds
    pytest.param(1, marks=pytest.mark.slow),  # about a minute on an idle core
])
def test_job_symmetry_merges_states_without_changing_the_verdict(restarts: int) -> None:
    plain = explore(small(jobs=2, cancel=False, drain=False, restarts=restarts,
                          symmetric_jobs=False))
    merged = explore(small(jobs=2, cancel=False, drain=False, restarts=restarts))
    assert plain.violations == merged.violations == ()
    assert merged.stats.states < plain.stats.states


def test_the_compiled_engine_explores_the_same_graph_as_transitions() -> None:
    fast = explore(small(cancel=False, drain=False))
    slow = explore(small(cancel=False, drain=False, compiled=False))
    assert (fast.stats.states, fast.stats.transitions, fast.stats.depth) == (
        slow.stats.states, slow.stats.transitions, slow.stats.depth)


# ----------------------------------------------------------------------------
# Mutations: the checker must catch a broken core
# ----------------------------------------------------------------------------


def test_catches_a_state_without_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    arm = SupervisorCore._arm

    def arm_except_warming(self: SupervisorCore,
                           obj: ChildRecord | JobRecord | PoolRecord) -> None:
        arm(self, obj)
        if isinstance(obj, ChildRecord) and obj.state == "warming":
            obj.deadline = None  # Z1/Z7: the warm-up is not bounded

    monkeypatch.setattr(SupervisorCore, "_arm", arm_except_warming)
    v = explore(small(jobs=0)).violation(SAFETY)
    assert v is not None
    assert "warming with no armed deadline" in v.message
    assert v.trace.labels == ["child 0's process starts", "child 0 sends Hello"]


def test_catches_a_hot_respawn_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    record = SupervisorCore._record_failure

    def forget_failures(self: SupervisorCore, child: ChildRecord) -> None:
        record(self, child)
        self.failures.clear()  # Z5: no restart intensity, no back-off

    monkeypatch.setattr(SupervisorCore, "_record_failure", forget_failures)
    # The world's own failure count breaks safety first (failures past
    # max_restarts and no back-off); searched to the end, the loop shows too.
    result = explore(small(jobs=0), stop_at_safety=False)
    safety = result.violation(SAFETY)
    assert safety is not None and "failures within restart_window" in safety.message
    v = result.violation(NO_HOT_LOOP)
    assert v is not None
    assert v.trace.loop_start is not None
    loop = v.trace.steps[v.trace.loop_start + 1:]
    assert sum(s.spawns for s in loop) >= 1
    assert not any(s.time_passed for s in loop)


def test_catches_a_job_left_on_a_dead_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SupervisorCore, "_release_job", lambda self, child: None)
    v = explore(small()).violation(SAFETY)
    assert v is not None
    assert "which does not hold it" in v.message


def test_catches_a_job_settled_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    settle = SupervisorCore._settle

    def settle_twice(self: SupervisorCore, job: int, *args: Any, **kwargs: Any) -> None:
        settle(self, job, *args, **kwargs)
        settle(self, job, *args, **kwargs)

    monkeypatch.setattr(SupervisorCore, "_settle", settle_twice)
    v = explore(small()).violation(SAFETY)
    assert v is not None
    assert "settled twice" in v.message


def test_catches_a_never_started_job_failed_for_its_dead_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def release_without_requeue(self: SupervisorCore, child: ChildRecord) -> None:
        # Z3 (LiveKit 1.8.9): whatever the job's state, its child's death fails it.
        job = self.jobs.get(child.job) if child.job is not None else None
        child.job = None
        if job is None:
            return
        self._fire(job, "abort")
        self._settle(job.ident, job.state, errors.ChildDied, "child died")
        del self.jobs[job.ident]

    monkeypatch.setattr(SupervisorCore, "_release_job", release_without_requeue)
    v = explore(small()).violation(SAFETY)
    assert v is not None
    assert "never started" in v.message
    # The job was dispatched and its child died before any ack: it never ran.
    assert "JobAck" not in " ".join(v.trace.labels)
    assert v.trace.labels[-1] == "child 0 crashes"


def test_catches_a_job_run_twice_when_an_ack_timeout_requeues_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    job_timeout = SupervisorCore._job_timeout

    def requeue_at_once(self: SupervisorCore, job: JobRecord) -> None:
        # wayout before the unacked state: a missed ack requeued the job at once,
        # though the ack could still be in flight from the child being killed.
        if job.state != "dispatched":
            job_timeout(self, job)
            return
        child = self.children[job.child] if job.child is not None else None
        self._fire(job, "timeout")  # -> unacked
        self._fire(job, "requeue")  # -> queued, at once
        job.child = None
        self.queue.appendleft(job.ident)
        if child is not None:
            child.job = None
            self._kill(child, "sent no ack", failure=True, cause="ack_timeout")

    monkeypatch.setattr(SupervisorCore, "_job_timeout", requeue_at_once)
    v = explore(small(children=2)).violation(SAFETY)
    assert v is not None
    assert "job 0 ran twice" in v.message
    # The ack timeout fires with child 0's ack in flight; the job goes to child 1
    # at once, and both acks arrive: both children ran it.
    assert v.trace.labels[-3:] == [
        "time passes to t=1 (+1s): deadlines fire",
        "child 0 sends JobAck (job 0)",
        "child 1 sends JobAck (job 0)",
    ]


def test_catches_a_dead_child_the_core_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    on_exit = SupervisorCore._on_child_exited

    def ignore_exit_while_warming(self: SupervisorCore, e: ev.ChildExited) -> None:
        child = self.children.get(e.child)
        if child is not None and child.state == "warming":
            return  # #1748: nothing awaits the exit during initialize()
        on_exit(self, e)

    monkeypatch.setitem(_handlers(), ev.ChildExited, ignore_exit_while_warming)
    result = explore(small(jobs=0))
    v = result.violation(SAFETY)
    assert v is not None
    assert "process exited, but the core still lists it as warming" in v.message
    # wayout's deadlines still get it out: initialize_timeout kills, kill_timeout abandons.
    assert WAY_OUT not in result.found


def test_catches_the_1748_wedge(monkeypatch: pytest.MonkeyPatch) -> None:
    on_exit = SupervisorCore._on_child_exited
    arm = SupervisorCore._arm

    def ignore_exit_while_warming(self: SupervisorCore, e: ev.ChildExited) -> None:
        child = self.children.get(e.child)
        if child is None or child.state != "warming":
            on_exit(self, e)

    def arm_except_warming(self: SupervisorCore,
                           obj: ChildRecord | JobRecord | PoolRecord) -> None:
        arm(self, obj)
        if isinstance(obj, ChildRecord) and obj.state == "warming":
            obj.deadline = None  # the init timer does nothing

    monkeypatch.setitem(_handlers(), ev.ChildExited, ignore_exit_while_warming)
    monkeypatch.setattr(SupervisorCore, "_arm", arm_except_warming)
    # The first thing wrong is a warming child with no deadline: safety, at once.
    result = explore(small(jobs=1, drain=False, close=False))
    v = result.violation(SAFETY)
    assert v is not None and "child 0 is warming with no armed deadline" in v.message
    # Told to go on, the search meets the wedge: the child crashed while
    # warming, the core still waits for it, and time passes forever with the
    # world's clocks counting (the job's age, the child's time in its state).
    result = explore(small(jobs=1, drain=False, close=False), stop_at_safety=False,
                     max_depth=60)
    assert result.found == {SAFETY, "finite"}
    wedged = explore(small(jobs=1, drain=False, close=False), stop_at_safety=False,
                     max_depth=60).violation("finite")
    assert wedged is not None
    assert len(wedged.trace.steps) == 62 and "warming" in wedged.trace.steps[-1].state


def test_catches_a_core_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: SupervisorCore, e: ev.Pong) -> None:
        raise errors.InvalidTransition("child", e.child, "ready", "pong")

    monkeypatch.setitem(_handlers(), ev.Pong, refuse)
    v = explore(small(jobs=0)).violation(SAFETY)
    assert v is not None
    assert "the core raised InvalidTransition on child 0 sends Pong" in v.message


def _handlers() -> dict[type[ev.Event], Any]:
    from fsm import core

    handlers: dict[type[ev.Event], Any] = core._HANDLERS
    return handlers


def test_events_iterate_in_a_stable_order() -> None:
    # Replaying a trace needs successors() to be a function of the state.
    design = small(children=2, idle=2)
    w = design.initial()

    def labels() -> Iterator[str]:
        return (s.label for s in design.successors(w))

    assert list(labels()) == list(labels())


# ----------------------------------------------------------------------------
# The parent's own stall (issue 15 item 1)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"children": 1, "idle": 1, "jobs": 1},
    {"children": 2, "idle": 1, "jobs": 1},
], ids=repr)
def test_a_parent_that_stalls_blames_no_child(kwargs: dict[str, Any]) -> None:
    plain = explore(WayoutDesign(**kwargs))
    result = explore(WayoutStalls(**kwargs))
    assert result.stats.complete
    assert result.violations == (), [v.message for v in result.violations]
    assert result.stats.states > plain.stats.states  # the stalls add states of their own


def _ready_then_stall(design: WayoutDesign) -> Any:
    """From the initial state: child 0 starts, warms, is ready; then the parent stalls."""
    state = design.initial()
    for label in ("child 0's process starts", "child 0 sends Hello", "child 0 sends Ready"):
        state = next(s for s in design.successors(state) if s.label == label).state
    [stall] = [s for s in design.successors(state) if s.label.startswith("the parent stalls")]
    return stall


def test_the_world_offers_one_stall_past_every_deadline() -> None:
    design = WayoutStalls(children=1, idle=1, jobs=0)
    stall = _ready_then_stall(design)
    assert stall.label == "the parent stalls: nobody drives it from t=0 to t=3 (+3s), past all " \
                          "its deadlines"
    assert stall.broken == ()
    assert stall.state.core.children[0].state == "ready"
    # Once per path: a stalled world offers no second stall.
    assert not [s for s in design.successors(stall.state)
                if s.label.startswith("the parent stalls")]


def test_catches_a_core_that_blames_children_for_its_own_stall(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The stall check removed (the mutant stall-blames-children): the ready
    # child's ping deadline passed unobserved, and it is killed for it.
    monkeypatch.setattr(SupervisorCore, "_parent_stalled", lambda self, last, since: None)
    stall = _ready_then_stall(WayoutStalls(children=1, idle=1, jobs=0))
    assert "child 0 was killed for ping_timeout, a deadline that passed while the parent was " \
           "stalled" in stall.broken
    v = explore(WayoutStalls(children=1, idle=1, jobs=1)).violation(SAFETY)
    assert v is not None
    assert "while the parent was stalled" in v.message
    assert v.trace.labels[-1].startswith("the parent stalls")
