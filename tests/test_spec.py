"""Each validation rule of LifecycleSpec, broken alone, and the queries of a valid spec."""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from fsm.errors import SpecError
from fsm.spec import TIMEOUT, Edge, LifecycleSpec, State, Transition

# A small valid lifecycle. Every test below changes exactly one thing in it.
BASE_STATES = (
    State("a", timeout="a_timeout", on_timeout="done", doc="the start"),
    State("b", timeout="b_timeout", on_timeout="failed"),
    State("done", final=True),
    State("failed", final=True),
)
BASE_TRANSITIONS = (
    Transition("go", "a", "b"),
    Transition("finish", "b", "done"),
    Transition("error", ("a", "b"), "failed"),
)


def toy(
    states: Iterable[State] = BASE_STATES,
    transitions: Iterable[Transition] = BASE_TRANSITIONS,
    initial: str = "a",
) -> LifecycleSpec:
    return LifecycleSpec("toy", states, transitions, initial)


def replace_state(new: State) -> tuple[State, ...]:
    return tuple(new if s.name == new.name else s for s in BASE_STATES)


def fails_with(fragment: str) -> AbstractContextManager[pytest.ExceptionInfo[SpecError]]:
    """The error must name the lifecycle and contain ``fragment`` verbatim."""
    return pytest.raises(SpecError, match=re.escape(f"lifecycle 'toy': {fragment}"))


def test_the_base_spec_is_valid() -> None:
    # Guards every test below: each must fail because of its one change only.
    spec = toy()
    assert spec.state_names == ("a", "b", "done", "failed")


# --- rule: every non-final state has exactly one timeout -----------------------


@pytest.mark.parametrize(
    "broken",
    [State("b"), State("b", timeout="b_timeout"), State("b", on_timeout="failed")],
    ids=["neither", "no-destination", "no-setting"],
)
def test_non_final_state_without_timeout(broken: State) -> None:
    with fails_with("non-final state 'b' has no timeout"):
        toy(states=replace_state(broken))


def test_non_final_state_with_a_second_timeout() -> None:
    with fails_with("state 'b' has more than one timeout"):
        toy(transitions=(*BASE_TRANSITIONS, Transition(TIMEOUT, "b", "done")))


def test_timeout_declared_as_a_transition_instead_of_on_the_state() -> None:
    with fails_with("state 'b' declares its timeout as a transition"):
        toy(
            states=replace_state(State("b")),
            transitions=(*BASE_TRANSITIONS, Transition(TIMEOUT, "b", "failed")),
        )


# --- rule: final states have no way out (no transition, no timeout) ------------


def test_final_state_with_an_outgoing_transition() -> None:
    with fails_with("final state 'failed' has an outgoing transition on 'retry'"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("retry", "failed", "a")))


@pytest.mark.parametrize(
    "broken",
    [
        State("done", final=True, timeout="done_timeout", on_timeout="a"),
        State("done", final=True, timeout="done_timeout"),
        State("done", final=True, on_timeout="a"),
    ],
    ids=["both", "setting-only", "destination-only"],
)
def test_final_state_with_a_timeout(broken: State) -> None:
    with fails_with("final state 'done' has a timeout"):
        toy(states=replace_state(broken))


# --- rule: every state is reachable from the initial state ----------------------


def test_unreachable_state() -> None:
    orphan = State("orphan", timeout="orphan_timeout", on_timeout="failed")
    with fails_with("state 'orphan' is unreachable from the initial state 'a'"):
        toy(states=(*BASE_STATES, orphan))


# --- rule: every state can reach a final state (no traps) -----------------------


def test_trap_state_that_cannot_reach_a_final_state() -> None:
    # x and y time out into each other forever: reachable, timed, and a trap.
    trap = (
        State("x", timeout="x_timeout", on_timeout="y"),
        State("y", timeout="y_timeout", on_timeout="x"),
    )
    with fails_with("state 'x' cannot reach any final state: it is a trap"):
        toy(
            states=(*BASE_STATES, *trap),
            transitions=(*BASE_TRANSITIONS, Transition("loop", "a", "x")),
        )


def test_lifecycle_without_any_final_state() -> None:
    states = (
        State("a", timeout="a_timeout", on_timeout="b"),
        State("b", timeout="b_timeout", on_timeout="a"),
    )
    with fails_with("it has no final state"):
        toy(states=states, transitions=(Transition("go", "a", "b"),))


# --- rule: deterministic (one transition per state and event) -------------------


def test_two_transitions_leave_one_state_on_one_event() -> None:
    with fails_with("state 'a' has two transitions on event 'go' (to 'b' and 'failed')"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("go", "a", "failed")))


def test_a_multi_source_transition_overlapping_another_is_non_deterministic() -> None:
    with fails_with("state 'b' has two transitions on event 'finish' (to 'done' and 'failed')"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("finish", ("a", "b"), "failed")))


# --- rule: transitions name known states ----------------------------------------


def test_transition_to_an_unknown_state() -> None:
    with fails_with("event 'go' names unknown destination state 'nowhere'"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("go", "b", "nowhere")))


def test_transition_from_an_unknown_state() -> None:
    with fails_with("event 'jump' names unknown source state 'nowhere'"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("jump", ("a", "nowhere"), "b")))


def test_timeout_to_an_unknown_state() -> None:
    broken = State("b", timeout="b_timeout", on_timeout="nowhere")
    with fails_with("timeout of state 'b' names unknown state 'nowhere'"):
        toy(states=replace_state(broken))


def test_unknown_initial_state() -> None:
    with fails_with("initial state 'nowhere' is not a declared state"):
        toy(initial="nowhere")


# --- well-formed names -----------------------------------------------------------


def test_state_declared_twice() -> None:
    with fails_with("state 'b' is declared twice"):
        toy(states=(*BASE_STATES, State("b", timeout="b_timeout", on_timeout="done")))


def test_state_name_that_is_not_an_identifier() -> None:
    with fails_with("state 'not ok' is not an identifier"):
        toy(states=(*BASE_STATES, State("not ok", final=True)))


def test_event_name_that_is_not_an_identifier() -> None:
    with fails_with("event 'go!' is not an identifier"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("go!", "a", "done")))


def test_transition_without_source() -> None:
    with fails_with("event 'go_nowhere' has no source state"):
        toy(transitions=(*BASE_TRANSITIONS, Transition("go_nowhere", (), "done")))


# --- queries of a valid spec --------------------------------------------------------


def test_edges_are_the_transitions_then_one_timeout_edge_per_non_final_state() -> None:
    assert toy().edges == (
        Edge("a", "go", "b"),
        Edge("b", "finish", "done"),
        Edge("a", "error", "failed"),
        Edge("b", "error", "failed"),
        Edge("a", TIMEOUT, "done", "a_timeout"),
        Edge("b", TIMEOUT, "failed", "b_timeout"),
    )


def test_successor_and_triggers() -> None:
    spec = toy()
    assert spec.successor("a", "go") == "b"
    assert spec.successor("a", TIMEOUT) == "done"
    assert spec.successor("a", "finish") is None
    assert spec.successor("done", "go") is None
    assert spec.triggers("a") == ("error", "go", TIMEOUT)
    assert spec.triggers("done") == ()
    assert spec.events == ("error", "finish", "go", TIMEOUT)
    assert spec.final_states == frozenset({"done", "failed"})
    assert spec.is_final("done") and not spec.is_final("a")


def test_asking_for_an_unknown_state_names_it() -> None:
    with pytest.raises(SpecError, match=re.escape("lifecycle 'toy' has no state 'nowhere'")):
        toy().state("nowhere")


def test_longest_timeout_chain_follows_timeouts_to_a_final_state() -> None:
    spec = toy(
        states=(
            State("a", timeout="a_timeout", on_timeout="b"),
            State("b", timeout="b_timeout", on_timeout="failed"),
            State("done", final=True),
            State("failed", final=True),
        ),
    )
    assert spec.longest_timeout_chain() == [
        Edge("a", TIMEOUT, "b", "a_timeout"),
        Edge("b", TIMEOUT, "failed", "b_timeout"),
    ]


def test_check_report_lists_states_events_timeouts_and_the_longest_chain() -> None:
    report = toy().check().splitlines()
    assert report == [
        "lifecycle toy: OK (initial a)",
        "  states (4): a, b, done, failed",
        "  final: done, failed",
        "  events (4): error, finish, go, timeout",
        "  timeouts:",
        "    a --a_timeout--> done",
        "    b --b_timeout--> failed",
        "  longest timeout chain to a final state: a -> done (a_timeout)",
    ]


# --- the README's example ---------------------------------------------------------


def test_the_readme_example_runs_and_its_claimed_error_is_true() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
              if "LifecycleSpec(" in b]
    assert len(blocks) == 1
    namespace: dict[str, object] = {"print": lambda *args: None}
    exec(blocks[0], namespace)
    spec = namespace["DOWNLOAD"]
    assert isinstance(spec, LifecycleSpec) and spec.initial == "connecting"

    # "Leave out timeout= on receiving and the constructor raises ..."
    without = blocks[0].replace(
        'State("receiving", timeout="idle_timeout", on_timeout="failed")', 'State("receiving")'
    )
    assert without != blocks[0]
    claimed = re.search(r"raises\n`SpecError: (lifecycle 'download': [^`]*?) \.\.\.`", readme)
    assert claimed is not None
    with pytest.raises(SpecError, match=re.escape(" ".join(claimed[1].split()))):
        exec(without, {"print": lambda *args: None})
