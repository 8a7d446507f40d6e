"""The explorer on tiny designs, each built to break exactly one property (or none).

The designs are counters and small graphs whose state space is known by
hand, so each test can say which property breaks, where, and how long the
shortest counterexample is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from models.design import NO_HOT_LOOP, SAFETY, WAY_OUT, Design, Goal, Step
from models.explorer import Progress, _strongly_connected, explore, reaches


class Graph(Design[str]):
    """A design given as a table: state -> [(label, next, time_passed, spawns)]."""

    def __init__(self, name: str, edges: dict[str, list[tuple[str, str, bool, int]]],
                 quiet: set[str], bad: set[str] = frozenset(),  # type: ignore[assignment]
                 broken_edges: set[str] = frozenset(),  # type: ignore[assignment]
                 expected: str | None = None, goals: Sequence[Goal[str]] = ()) -> None:
        self.name = name
        self.edges = edges
        self.quiet = quiet
        self.bad = bad
        self.broken_edges = broken_edges
        self.expected = expected
        self._goals = goals

    def initial(self) -> str:
        return "init"

    def successors(self, state: str) -> Iterator[Step[str]]:
        for label, nxt, timed, spawns in self.edges.get(state, []):
            broken = (f"step {label} is wrong",) if label in self.broken_edges else ()
            yield Step(label, nxt, timed, spawns, broken)

    def quiescent(self, state: str) -> bool:
        return state in self.quiet

    def invariants(self, state: str) -> Sequence[str]:
        return [f"{state} is bad"] if state in self.bad else []

    def goals(self) -> Sequence[Goal[str]]:
        return self._goals


def E(label: str, nxt: str, timed: bool = False, spawns: int = 0) -> tuple[str, str, bool, int]:
    return (label, nxt, timed, spawns)


# A healthy pool in miniature: spawn, warm, idle; a crash backs off on a timer.
HEALTHY = {
    "init": [E("spawn", "warming", spawns=1)],
    "warming": [E("ready", "idle"), E("crash", "backoff")],
    "idle": [E("crash", "backoff")],
    "backoff": [E("timer", "init", timed=True)],
}


def test_a_design_that_keeps_every_property_passes() -> None:
    result = explore(Graph("healthy", HEALTHY, quiet={"idle", "backoff"}))
    assert result.violations == ()
    assert result.as_expected
    assert (result.stats.states, result.stats.transitions, result.stats.depth) == (4, 5, 2)
    assert result.checked == (SAFETY, WAY_OUT, NO_HOT_LOOP)


def test_safety_only() -> None:
    result = explore(Graph("unsafe", HEALTHY, quiet={"idle", "backoff"}, bad={"backoff"}))
    assert result.found == {SAFETY}
    v = result.violations[0]
    assert v.trace.labels == ["spawn", "crash"]  # the shortest way to "backoff"
    assert v.message.startswith("backoff is bad")
    assert v.trace.steps[-1].broken == ("backoff is bad",)


def test_a_broken_step_is_a_safety_violation_ending_with_that_step() -> None:
    result = explore(Graph("bad-step", HEALTHY, quiet={"idle", "backoff"},
                           broken_edges={"ready"}))
    assert result.found == {SAFETY}
    v = result.violations[0]
    assert v.trace.labels == ["spawn", "ready"]
    assert "step ready is wrong" in v.trace.steps[-1].broken


def test_way_out_only_even_though_no_state_is_a_deadlock() -> None:
    # The #1748 shape: after "die" the timer and new jobs still fire, forever.
    edges = dict(HEALTHY)
    edges["warming"] = [E("ready", "idle"), E("die", "parked")]
    edges["parked"] = [E("timer", "parked", timed=True), E("submit", "parked+job")]
    edges["parked+job"] = [E("timer", "parked+job", timed=True)]
    result = explore(Graph("wedge", edges, quiet={"idle", "backoff"}))
    assert result.found == {WAY_OUT}
    v = result.violations[0]
    assert v.trace.labels == ["spawn", "die"]
    assert v.trace.failing == 2
    assert "2 of 6 reachable states" in v.detail[0]
    assert "submit; timer" in v.detail[1]  # it is not a deadlock: events remain
    # The trace goes on into the trap: with the job submitted, only the timer is left.
    assert [s.label for s in v.trace.onward] == ["submit"]
    assert v.trace.trap_size == 1 and v.trace.trapped == 3
    assert v.detail[2] == ("State 3 is trapped: it never leaves that state. Events still "
                           "possible there, each of which keeps it inside and none of which "
                           "reaches a quiescent state: timer")


def test_the_trace_goes_on_to_the_nearest_trap_and_names_its_size() -> None:
    # After "die" the pool can still serve one round (a worker takes the task: progress),
    # but never reaches quiescence; the trap is the two-state cycle at the end.
    edges = dict(HEALTHY)
    edges["warming"] = [E("ready", "idle"), E("die", "one-worker")]
    edges["one-worker"] = [E("worker takes task", "no-worker")]
    edges["no-worker"] = [E("timer", "no-worker+tick", timed=True)]
    edges["no-worker+tick"] = [E("timer", "no-worker", timed=True)]
    result = explore(Graph("trap", edges, quiet={"idle", "backoff"}))
    v = result.violation(WAY_OUT)
    assert v is not None
    assert v.trace.labels == ["spawn", "die"]
    assert [s.label for s in v.trace.onward] == ["worker takes task"]
    assert v.trace.trap_size == 2
    assert "worker takes task" in v.detail[1] and "none ever reaches" in v.detail[1]
    assert "never leaves those 2 states" in v.detail[2] and v.detail[2].endswith(": timer")


def test_a_first_stuck_state_inside_its_trap_has_no_onward_path() -> None:
    edges = {"init": [E("spawn", "stuck", spawns=1)], "stuck": [E("tick", "stuck", timed=True)]}
    v = explore(Graph("selfloop", edges, quiet={"init"})).violation(WAY_OUT)
    assert v is not None and v.trace.onward == () and v.trace.trapped == 1


def test_a_deadlock_is_reported_as_one() -> None:
    edges = {"init": [E("spawn", "stuck", spawns=1)]}
    result = explore(Graph("deadlock", edges, quiet={"init"}))
    v = result.violation(WAY_OUT)
    assert v is not None
    assert v.trace.labels == ["spawn"]
    assert "nothing can happen at all" in v.detail[-1]


def test_hot_loop_only() -> None:
    # crash -> respawn at once, but the respawn can also warm up: way out holds.
    edges = {
        "init": [E("spawn", "warming", spawns=1)],
        "warming": [E("ready", "idle"), E("crash", "init")],
        "idle": [E("tick", "idle", timed=True)],
    }
    result = explore(Graph("hot", edges, quiet={"idle"}))
    assert result.found == {NO_HOT_LOOP}
    v = result.violations[0]
    assert v.trace.loop_start == 0
    assert v.trace.labels == ["spawn", "crash"]
    assert "2 steps spawns 1 process" in v.message


def test_time_passing_in_a_respawn_cycle_makes_it_no_hot_loop() -> None:
    edges = {
        "init": [E("spawn", "warming", spawns=1)],
        "warming": [E("ready", "idle"), E("crash", "backoff")],
        "backoff": [E("delay", "init", timed=True)],
        "idle": [],
    }
    assert explore(Graph("paced", edges, quiet={"idle", "backoff"})).violations == ()


def test_a_zero_time_cycle_without_a_spawn_is_no_hot_loop() -> None:
    edges = {"init": [E("ping", "pong")], "pong": [E("ping", "init")]}
    assert explore(Graph("chatty", edges, quiet={"init", "pong"})).violations == ()


def test_a_spawning_self_loop_is_a_hot_loop() -> None:
    edges = {"init": [E("respawn", "init", spawns=1)]}
    result = explore(Graph("self", edges, quiet={"init"}))
    assert result.found == {NO_HOT_LOOP}
    assert result.violations[0].trace.labels == ["respawn"]


def test_the_hot_loop_reported_is_reached_by_the_shortest_prefix() -> None:
    edges = {
        "init": [E("a", "a1"), E("b", "loop")],
        "a1": [E("a", "a2")],
        "a2": [E("a", "loop")],
        "loop": [E("spawn", "loop2", spawns=1), E("rest", "quiet")],
        "loop2": [E("fail", "loop")],
        "quiet": [],
    }
    v = explore(Graph("prefix", edges, quiet={"quiet"})).violations[0]
    assert v.trace.labels == ["b", "spawn", "fail"]
    assert v.trace.loop_start == 1


def test_counterexamples_are_shortest() -> None:
    # A long detour and a short path both reach "bad"; BFS reports the short one.
    edges = {
        "init": [E(f"long{i}", f"l{i}") for i in range(1)] + [E("short1", "s1")],
        "l0": [E("long1", "l1")],
        "l1": [E("long2", "l2")],
        "l2": [E("long3", "bad")],
        "s1": [E("short2", "bad")],
        "bad": [],
    }
    result = explore(Graph("paths", edges, quiet={"bad"}, bad={"bad"}))
    assert result.violations[0].trace.labels == ["short1", "short2"]


def test_a_goal_is_checked_like_way_out() -> None:
    goal: Goal[str] = Goal("serves", when=lambda s: s == "idle", reach=lambda s: s == "served",
                           target="a served job")
    edges = {"init": [E("spawn", "idle", spawns=1)], "idle": [E("tick", "idle", timed=True)]}
    result = explore(Graph("liar", edges, quiet={"idle"}, goals=[goal]))
    assert result.found == {"serves"}
    assert result.violations[0].message.endswith("reaches a served job")


def test_the_state_limit_stops_the_search_and_skips_liveness() -> None:
    class Counter(Design[int]):
        name = "counter"

        def initial(self) -> int:
            return 0

        def successors(self, state: int) -> Iterator[Step[int]]:
            yield Step("inc", state + 1)

        def quiescent(self, state: int) -> bool:
            return False

    result = explore(Counter(), max_states=50)
    assert not result.stats.complete
    assert result.stats.states == 50
    assert result.checked == (SAFETY,)
    assert not result.as_expected  # a design that must pass is not verified


def test_a_design_that_raises_breaks_safety() -> None:
    class Raises(Design[int]):
        name = "raises"

        def initial(self) -> int:
            return 0

        def successors(self, state: int) -> Iterator[Step[int]]:
            if state == 2:
                raise ValueError("no rule for this")
            yield Step("inc", state + 1)

        def quiescent(self, state: int) -> bool:
            return state == 1

    result = explore(Raises())
    v = result.violation(SAFETY)
    assert v is not None
    assert "raised ValueError: no rule for this" in v.message
    assert v.trace.labels == ["inc", "inc"]


def test_progress_is_reported() -> None:
    seen: list[Progress] = []

    class Line(Design[int]):
        name = "line"

        def initial(self) -> int:
            return 0

        def successors(self, state: int) -> Iterator[Step[int]]:
            if state < 99:
                yield Step("inc", state + 1)

        def quiescent(self, state: int) -> bool:
            return state == 99

    explore(Line(), progress=seen.append, progress_every=10)
    assert [p.states for p in seen] == list(range(10, 101, 10))


def test_expected_property_decides_as_expected() -> None:
    unsafe = Graph("unsafe", HEALTHY, quiet={"idle", "backoff"}, bad={"idle"},
                   expected=SAFETY)
    assert explore(unsafe).as_expected
    wrong = Graph("unsafe", HEALTHY, quiet={"idle", "backoff"}, bad={"idle"},
                  expected=WAY_OUT)
    assert not explore(wrong).as_expected


@pytest.mark.parametrize(("graph", "components"), [
    ({0: [1], 1: [2], 2: [0]}, [{0, 1, 2}]),
    ({0: [1], 1: []}, [{0}, {1}]),
    ({0: [1], 1: [0, 2], 2: [3], 3: [2]}, [{0, 1}, {2, 3}]),
    ({0: [0]}, [{0}]),
])
def test_strongly_connected_components(graph: dict[int, list[int]],
                                       components: list[set[int]]) -> None:
    comp = _strongly_connected(graph)
    for group in components:
        assert len({comp[n] for n in group}) == 1
    assert len(set(comp.values())) == len(components)


def test_reaches_prefers_time_and_tells_unknown_from_no() -> None:
    edges = dict(HEALTHY)
    edges["warming"] = [E("ready", "idle"), E("die", "parked")]
    edges["parked"] = [E("timer", "parked", timed=True)]
    design = Graph("wedge", edges, quiet={"idle"})
    assert reaches(design, "init") is True
    assert reaches(design, "parked") is False

    class Counter(Design[int]):
        name = "counter"

        def initial(self) -> int:
            return 0

        def successors(self, state: int) -> Iterator[Step[int]]:
            yield Step("inc", state + 1)

        def quiescent(self, state: int) -> bool:
            return state == 10_000

    assert reaches(Counter(), 0, max_states=100) is None


class Growing(Design[int]):
    """A counter that only grows: every state is quiescent and safe, none is last."""

    name = "growing"
    expected = None

    def __init__(self, bad_at: int | None = None) -> None:
        self.bad_at = bad_at

    def initial(self) -> int:
        return 0

    def successors(self, state: int) -> Iterator[Step[int]]:
        yield Step("count", state + 1, True)
        yield Step("count twice", state + 2, True)

    def quiescent(self, state: int) -> bool:
        return True

    def invariants(self, state: int) -> Sequence[str]:
        return ["the counter reached the bad value"] if state == self.bad_at else ()


def test_a_state_space_that_keeps_growing_breaks_finite_and_says_why() -> None:
    result = explore(Growing(), max_depth=50)
    assert sorted(result.found) == ["finite"]
    assert not result.stats.complete
    assert result.stats.stopped == "depth grew past 50: a counter or a queue without bound"
    v = result.violations[0]
    assert len(v.trace.steps) == 52  # the initial state, then 51 steps to the deepest state


def test_the_search_stops_at_the_first_safety_violation() -> None:
    result = explore(Growing(bad_at=1), max_depth=10_000)
    assert sorted(result.found) == [SAFETY]
    assert result.stats.stopped == "stopped at the first safety violation"
    assert result.stats.states <= 3  # not the 10,000 states to the depth limit
    # A design expected to break a liveness property is searched to the end.
    went_on = explore(Growing(bad_at=1), max_depth=20, stop_at_safety=False)
    assert sorted(went_on.found) == ["finite", SAFETY]
