"""The three shipped lifecycles: valid, faithful to the mission's table, and their machines."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

import fsm
from fsm.errors import InvalidTransition
from fsm.events import KILL_CAUSES
from fsm.lifecycles import ALL, CHILD, JOB, POOL
from fsm.machine import lifecycle
from fsm.spec import TIMEOUT, LifecycleSpec

# The timeout of every state as ../shared/README.md defines it:
# state -> (setting, destination); None for final states.
MISSION: dict[str, dict[str, tuple[str, str] | None]] = {
    "child": {
        "spawned": ("spawn_timeout", "failed"),
        "warming": ("initialize_timeout", "failed"),
        "ready": ("ping_timeout", "failed"),
        "busy": ("ping_timeout", "failed"),
        "stopping": ("close_timeout", "failed"),
        "failed": ("kill_timeout", "abandoned"),
        "killed": None,
        "abandoned": None,
    },
    "job": {
        "queued": ("queue_timeout", "failed"),
        "dispatched": ("ack_timeout", "unacked"),
        "unacked": ("kill_timeout", "queued"),
        "running": ("job_timeout", "cancelling"),
        "cancelling": ("close_timeout", "cancelled"),
        "done": None,
        "failed": None,
        "cancelled": None,
    },
    "pool": {
        "starting": ("start_timeout", "running"),
        "running": ("ping_interval", "running"),
        "backing_off": ("backoff_delay", "running"),
        "draining": ("drain_timeout", "closing"),
        "closing": ("shutdown_timeout", "closed"),
        "closed": None,
    },
}
INITIAL = {"child": "spawned", "job": "queued", "pool": "starting"}


def test_the_shipped_lifecycles_are_child_job_and_pool() -> None:
    assert [spec.name for spec in ALL] == ["child", "job", "pool"]
    assert (fsm.CHILD, fsm.JOB, fsm.POOL) == (CHILD, JOB, POOL)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_every_shipped_spec_validates_when_rebuilt_from_its_parts(spec: LifecycleSpec) -> None:
    rebuilt = LifecycleSpec(spec.name, spec.states, spec.transitions, spec.initial, spec.doc)
    assert rebuilt.edges == spec.edges


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_states_initial_and_timeouts_match_the_mission(spec: LifecycleSpec) -> None:
    declared = {
        s.name: (None if s.final else (s.timeout, s.on_timeout)) for s in spec.states
    }
    assert declared == MISSION[spec.name]
    assert spec.initial == INITIAL[spec.name]


@pytest.mark.parametrize("state", ["spawned", "warming", "ready", "busy", "stopping", "failed"])
def test_a_child_that_exits_on_its_own_is_killed_from_any_live_state(state: str) -> None:
    assert CHILD.successor(state, "exit") == "killed"


def test_a_pong_keeps_ready_and_busy_children_where_they_are() -> None:
    assert CHILD.successor("ready", "pong") == "ready"
    assert CHILD.successor("busy", "pong") == "busy"


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_check_all_reports_every_state_of_every_lifecycle(spec: LifecycleSpec) -> None:
    report = fsm.check_all()
    section = re.search(
        rf"^lifecycle {spec.name}: OK \(initial {spec.initial}\)\n  states \(\d+\): (.*)$",
        report,
        re.MULTILINE,
    )
    assert section is not None, f"no section for {spec.name!r} in:\n{report}"
    assert section.group(1).split(", ") == list(spec.state_names)
    for st in spec.states:
        if not st.final:
            assert f"    {st.name} --{st.timeout}--> {st.on_timeout}" in report


def test_check_all_names_the_longest_timeout_chains() -> None:
    report = fsm.check_all()
    for line in (
        "spawned -> failed -> abandoned (spawn_timeout + kill_timeout)",
        "dispatched -> unacked -> queued -> failed (ack_timeout + kill_timeout + queue_timeout)",
        "draining -> closing -> closed (drain_timeout + shutdown_timeout)",
    ):
        assert f"longest timeout chain to a final state: {line}" in report


# --- the machines built from the specs ----------------------------------------------


@dataclass
class Obj:
    """The smallest object a lifecycle can drive."""

    kind: str
    ident: int
    state: str


def test_an_invalid_trigger_on_a_child_raises_naming_child_state_and_event() -> None:
    child = Obj("child", 7, "spawned")
    message = "child 7: event 'finish' is not allowed in state 'spawned'"
    with pytest.raises(InvalidTransition, match=re.escape(message)) as caught:
        lifecycle(CHILD).fire(child, "finish")
    assert (caught.value.kind, caught.value.ident, caught.value.state, caught.value.event) == (
        "child",
        7,
        "spawned",
        "finish",
    )
    assert child.state == "spawned"


@pytest.mark.parametrize("event", ["no_such_event", "to_killed"], ids=["unknown", "auto"])
def test_unknown_and_auto_transition_events_raise(event: str) -> None:
    child = Obj("child", 3, "ready")
    with pytest.raises(InvalidTransition, match=re.escape(f"child 3: event {event!r}")):
        lifecycle(CHILD).fire(child, event)
    assert child.state == "ready"


def test_a_final_child_accepts_no_event() -> None:
    child = Obj("child", 1, "killed")
    for event in CHILD.events:
        with pytest.raises(InvalidTransition, match=re.escape("in state 'killed'")):
            lifecycle(CHILD).fire(child, event)
    assert child.state == "killed"


def test_a_child_walks_its_happy_path() -> None:
    child = Obj("child", 0, "spawned")
    path = ["hello", "warmed", "dispatch", "pong", "finish", "stop", "exit"]
    states = [lifecycle(CHILD).fire(child, event) for event in path]
    assert states == ["warming", "ready", "busy", "busy", "ready", "stopping", "killed"]


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_the_machine_agrees_with_the_spec_on_every_state_and_event(spec: LifecycleSpec) -> None:
    machine = lifecycle(spec)
    for state in spec.state_names:
        for event in spec.events:
            obj = Obj(spec.name, 0, state)
            expected = spec.successor(state, event)
            if expected is None:
                with pytest.raises(InvalidTransition):
                    machine.fire(obj, event)
                assert obj.state == state
            else:
                assert machine.fire(obj, event) == expected == obj.state
    assert TIMEOUT in spec.events


def test_one_shared_machine_per_spec() -> None:
    assert lifecycle(CHILD) is lifecycle(CHILD)
    assert lifecycle(CHILD).machine is not lifecycle(JOB).machine


def test_the_timeout_of_every_killable_child_state_names_a_kill_cause_and_says_what() -> None:
    # The core kills a child whose state's deadline passed with that setting as
    # the cause, and says in the state's own words what the child failed to do.
    killable = CHILD.sources("kill")
    assert killable == {e.source for e in CHILD.edges if e.event == "kill"} != set()
    for state in killable:
        assert CHILD.state(state).timeout in KILL_CAUSES, state
        assert CHILD.state(state).missed, state


def test_sources_are_the_states_an_event_leaves() -> None:
    assert POOL.sources("drain") == {"starting", "running", "backing_off"}
    assert CHILD.sources("pong") == {"ready", "busy"}
    assert JOB.sources("nothing") == frozenset()
