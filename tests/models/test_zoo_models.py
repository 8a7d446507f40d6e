"""The bug zoo: each historical design is caught by the property it breaks, with the
shortest trace to its failure, and each remedy passes the same checks.
"""

from __future__ import annotations

import pytest

from fsm.errors import SpecError
from fsm.spec import LifecycleSpec, State, Transition
from models import registry
from models.design import NO_HOT_LOOP, SAFETY, WAY_OUT, Design
from models.explorer import explore
from models.zoo.z1_agents_js_1748 import PRE_FIX_CHILD, AgentsJs1748, AgentsJs1768
from models.zoo.z2_agents_js_sigterm import AgentsJsSigterm
from models.zoo.z3_dead_idle_process import DeadIdleProcess, DeadIdleProcessPy
from models.zoo.z4_livekit_5868 import LiveKit5868
from models.zoo.z5_hot_respawn import HotRespawn
from models.zoo.z6_supervisord_stopping import SupervisordStopping
from models.zoo.z7_gunicorn_boot import GunicornBoot

ZOO = [m for m in registry.MODELS if m.zoo.startswith("Z") and m.design.expected is not None]


def test_every_zoo_entry_has_a_model() -> None:
    assert {m.zoo for m in ZOO} == {f"Z{i}" for i in range(1, 8)}


@pytest.mark.parametrize("entry", ZOO, ids=lambda m: m.name)
def test_zoo_design_is_caught_by_the_property_it_breaks(entry: registry.ModelEntry) -> None:
    result = explore(entry.design)
    # Complete, or stopped at the first safety violation when that is what it breaks.
    assert result.stats.complete or (
        result.expected == SAFETY
        and result.stats.stopped == "stopped at the first safety violation"), result.stats
    assert result.expected in result.found, result.found
    assert result.as_expected
    v = result.violation(result.expected or "")
    assert v is not None and len(v.trace.steps) >= 2


# The shortest story of each failure, event by event.
SHORTEST = {
    "z1-agents-js-1748": (WAY_OUT, ["watch task spawns a child and awaits initialize()",
                                    "child dies while warming (OOM)"]),
    "z2-agents-js-sigterm": (SAFETY, ["pool spawns a child (init timer armed)",
                                      "init timer fires: SIGTERM"]),
    "z3-agents-js-2321": (WAY_OUT, ["pool spawns a warm process",
                                    "idle warm process is SIGKILLed (OOM)",
                                    "user submits job 0",
                                    "job 0 is written to the dead process (the write succeeds)"]),
    "z3-livekit-py-1.8.9": (SAFETY, ["pool spawns a warm process",
                                     "idle warm process is SIGKILLed (OOM)",
                                     "user submits job 0",
                                     "job 0 is written to the dead process (the write succeeds)",
                                     "job 0's process is found dead: job FAILED, no retry"]),
    "z4-livekit-5868": (SAFETY, ["user submits job 0: launch_job awaits queue.get()"]),
    "z5-hot-respawn": (NO_HOT_LOOP, ["pool spawns a child", "the initializer raises; the child "
                                     "exits"]),
    "z6-supervisord-stopping": (WAY_OUT, ["process enters uninterruptible sleep (D state)",
                                          "user: supervisorctl stop (stop signal sent)"]),
    "z7-gunicorn-boot": (SAFETY, ["arbiter spawns a worker"]),
}


@pytest.mark.parametrize("name", sorted(SHORTEST))
def test_zoo_counterexample_is_the_shortest_story(name: str) -> None:
    prop, labels = SHORTEST[name]
    v = explore(registry.build(name)).violation(prop)
    assert v is not None
    assert v.trace.labels == labels


@pytest.mark.parametrize("design", [
    AgentsJs1768(), AgentsJs1768(jobs=2, crashes=2), AgentsJsSigterm(sigkill=True),
    HotRespawn(backoff=True), SupervisordStopping(kill_timeout=True),
    GunicornBoot(clock="monotonic"),
], ids=lambda d: d.name)
def test_the_remedy_passes(design: Design[object]) -> None:
    result = explore(design)
    assert result.violations == ()
    assert result.as_expected


def test_z1_wedge_is_not_a_deadlock() -> None:
    v = explore(AgentsJs1748()).violation(WAY_OUT)
    assert v is not None
    # The timer and new jobs stay enabled in the first wedged state...
    assert "init timer fires" in v.detail[1] and "user submits job 0" in v.detail[1]
    # ...and the trace goes on until both have happened: the job waits forever.
    assert [s.label for s in v.trace.onward] == ["init timer fires", "user submits job 0"]
    assert "jobs waiting 1" in v.trace.onward[-1].state


def test_z1_availability_lies() -> None:
    result = explore(AgentsJs1748(jobs=2))
    assert "honest_availability" in result.found


def test_z1_with_more_jobs_and_crashes_is_still_caught_as_early() -> None:
    v = explore(AgentsJs1748(jobs=3, crashes=2)).violation(WAY_OUT)
    assert v is not None and len(v.trace.labels) == 2


def test_the_pre_fix_child_passes_the_spec_checks_it_cannot_see_past() -> None:
    # On paper warming can reach a final state (via the first message), so the
    # spec validates; only the explorer, playing a dead child, finds the wedge.
    assert PRE_FIX_CHILD.successor("warming", "timeout") == "warming"
    assert PRE_FIX_CHILD.successor("warming", "exit") is None


def test_the_pre_fix_child_written_honestly_is_refused_by_the_spec() -> None:
    # Honestly, the pre-fix warming state has no timeout of its own (the timer
    # only rejects a side future): wayout's spec refuses that at construction.
    with pytest.raises(SpecError, match="non-final state 'warming' has no timeout"):
        LifecycleSpec(
            name="agents-js child before #1768, honestly",
            initial="warming",
            states=[
                State("warming"),
                State("ready", timeout="ping_timeout", on_timeout="gone"),
                State("gone", final=True),
            ],
            transitions=[Transition("first_message", "warming", "ready"),
                         Transition("exit", "ready", "gone")],
        )


def test_z3_a_started_job_may_fail_for_its_dead_child() -> None:
    # The invariant is about truth, not about failing: a job that ran and lost
    # its process is rightly failed. Only the never-started one is a lie.
    result = explore(DeadIdleProcessPy(crashes=1))
    v = result.violation(SAFETY)
    assert v is not None and "never started" in v.message
    assert explore(DeadIdleProcess(crashes=0)).violations == ()


def test_z4_way_out_alone_would_miss_it() -> None:
    # Some spawn may always succeed, so a way out exists; only the deadline
    # invariant sees jobs that wait forever while every spawn fails.
    result = explore(LiveKit5868(jobs=2))
    assert result.found == {SAFETY}


def test_z6_the_kill_state_needs_its_own_timeout() -> None:
    result = explore(SupervisordStopping())
    assert {SAFETY, WAY_OUT} <= result.found
    assert explore(SupervisordStopping(kill_timeout=True)).found == frozenset()


def test_z7_reaper_deadline_is_decades_away() -> None:
    v = explore(GunicornBoot()).violation(SAFETY)
    assert v is not None and "54 years" in v.message
