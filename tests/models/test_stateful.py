"""Hypothesis stateful search over the core plus its world.

Where the explorer enumerates every state within small bounds, these state
machines take long random walks with bigger pools and let hypothesis shrink a
failure to a minimal interleaving. The rules are the world's events (a child
speaks, exits, a spawn is answered, time jumps to the next deadline, the user
submits, cancels, drains, closes); the invariants are the safety properties,
"no respawn storm without time passing", and "a quiescent state is reachable
from here" (a bounded search that tries the deadlines first).

The same machine, built over the bug zoo's #1748 design, must fail: that is
the test that the search can find a wedge at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    precondition,
    rule,
    run_state_machine_as_test,
)

from fsm import events as ev
from models.testing import design_walk, hypothesis_search, walk_of
from models.wayout import WayoutDesign, World, model_config
from models.zoo.z1_agents_js_1748 import AgentsJs1748, AgentsJs1768
from models.zoo.z5_hot_respawn import HotRespawn

FAST = settings(max_examples=40, stateful_step_count=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow], derandomize=True)
DEEP = settings(max_examples=300, stateful_step_count=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


#: The walk through any design, shared with users (models/testing.py).
DesignWalk = design_walk()


# ----------------------------------------------------------------------------
# wayout's core: rules per kind of world event
# ----------------------------------------------------------------------------

MESSAGES = (ev.Hello, ev.Ready, ev.InitError, ev.Pong, ev.JobAck, ev.JobDone, ev.JobRaised,
            ev.CancelAck)


def kind_of(e: ev.Event) -> str:
    if isinstance(e, MESSAGES):
        return "message"
    if isinstance(e, ev.Spawned) or (isinstance(e, ev.ChildExited) and e.code is None):
        return "spawn"
    if isinstance(e, ev.ChildExited):
        return "exit"
    if isinstance(e, ev.DeadlineReached):
        return "time"
    return "user"


def has(kind: str) -> Callable[[WayoutWalk], bool]:
    """A precondition: the world offers an event of this kind now."""
    return lambda self: bool(self.events(kind))


class WayoutWalk(DesignWalk):
    """The real core; each rule draws one event of its kind from what the world offers."""

    design: ClassVar[WayoutDesign] = WayoutDesign(children=3, jobs=4, restarts=2, idle=2)

    def events(self, kind: str) -> list[ev.Event]:
        state: World = self.state
        return [e for e in self.design.events(state) if kind_of(e) == kind]

    def fire(self, kind: str, pick: int) -> None:
        events = self.events(kind)
        self.take(self.design.apply(self.state, events[pick % len(events)]))

    @precondition(has("message"))
    @rule(pick=st.integers(0, 100))
    def child_sends(self, pick: int) -> None:
        self.fire("message", pick)

    @precondition(has("exit"))
    @rule(pick=st.integers(0, 100))
    def child_exits(self, pick: int) -> None:
        self.fire("exit", pick)

    @precondition(has("spawn"))
    @rule(pick=st.integers(0, 100))
    def spawn_is_answered(self, pick: int) -> None:
        self.fire("spawn", pick)

    @precondition(has("time"))
    @rule()
    def time_passes(self) -> None:
        self.fire("time", 0)

    @precondition(has("user"))
    @rule(pick=st.integers(0, 100))
    def user_acts(self, pick: int) -> None:
        self.fire("user", pick)

    # The generic rule would duplicate the ones above.
    any_event = None  # type: ignore[assignment]


def test_wayout_core_keeps_its_promises_on_random_walks() -> None:
    run_state_machine_as_test(WayoutWalk, settings=FAST)


def test_wayout_core_serving_recovers_on_random_walks() -> None:
    serving = WayoutDesign(children=2, jobs=3, restarts=1, drain=False, close=False)
    run_state_machine_as_test(type("ServingWalk", (WayoutWalk,), {"design": serving}),
                              settings=FAST)


@pytest.mark.slow
@pytest.mark.parametrize("design", [
    WayoutDesign(children=3, jobs=5, restarts=2, idle=2),
    WayoutDesign(children=3, jobs=4, restarts=1, idle=1, drain=False, close=False),
    WayoutDesign(jobs=4, config=model_config(3, idle=2, restarts=2, max_jobs_per_child=1)),
], ids=["3-children", "serving", "recycling"])
def test_wayout_core_deep_random_walks(design: WayoutDesign) -> None:
    run_state_machine_as_test(type("DeepWalk", (WayoutWalk,), {"design": design}),
                              settings=DEEP)


# ----------------------------------------------------------------------------
# The search must find known wedges
# ----------------------------------------------------------------------------


def test_hypothesis_finds_the_1748_wedge_and_shrinks_it() -> None:
    machine = walk_of(AgentsJs1748(jobs=2, crashes=1))
    with pytest.raises(AssertionError, match="no way out"):
        run_state_machine_as_test(machine, settings=settings(FAST, max_examples=200))
    # The shrunk walk is the shortest story: spawn, then the child dies.
    assert machine.last_walk == ["watch task spawns a child and awaits initialize()",
                                 "child dies while warming (OOM)"]


def test_the_1768_fix_survives_the_same_search() -> None:
    run_state_machine_as_test(walk_of(AgentsJs1768(jobs=2, crashes=1)),
                              settings=settings(FAST, max_examples=100))


def test_hypothesis_finds_the_hot_respawn_loop() -> None:
    # Z5 has no way out either; leave that out to see the storm itself.
    machine = walk_of(HotRespawn(), max_spawns_at_once=3, check_way_out=False)
    with pytest.raises(AssertionError, match="spawns with no time passing"):
        run_state_machine_as_test(machine, settings=settings(FAST, max_examples=200))
    assert machine.last_walk == ["pool spawns a child", "the initializer raises; the child exits",
                                 "pool spawns a child", "the initializer raises; the child exits",
                                 "pool spawns a child", "the initializer raises; the child exits",
                                 "pool spawns a child"]


def test_a_users_design_in_one_call() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    try:
        from tutorial_pool import RestartingPool
    finally:
        sys.path.pop(0)
    with pytest.raises(AssertionError, match="no way out"):
        hypothesis_search(RestartingPool(jobs=2), max_examples=200, derandomize=True)
    hypothesis_search(RestartingPool(jobs=3, deaths=2, restart_on_signal=True),
                      max_examples=50, derandomize=True)
