"""The explorer: every reachable state of a design, and the three properties.

``explore(design)`` walks the state graph breadth first, deduplicating states
by ``design.key``, and records every edge. Then it checks

1. **safety**: the design's invariants, in every state as it is discovered;
2. **way out**: from every reachable state some quiescent state is reachable.
   This is backward reachability from the quiescent states over the recorded
   graph, not deadlock detection: in a wedged pool the timer still fires and
   the user may still submit, so no state lacks a successor, yet none of them
   leads anywhere (agents-js #1748);
3. **no hot loop**: no cycle of steps in which no time passes contains a
   spawn. The strongly connected components of the zero-time edges are
   computed, and a spawning edge inside one is a respawn loop.

Breadth-first order makes every counterexample the shortest: state ids are
handed out in order of discovery, so the lowest failing id is the closest to
the initial state. To keep memory low the explorer stores only keys and
integer edges; a trace is rebuilt afterwards by replaying ``successors`` along
the recorded parent links (designs are deterministic functions of the state).

Nothing here does I/O: results are data, and ``models.report`` turns them into
text and pictures.
"""

from __future__ import annotations

import gc
import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from models.design import NO_HOT_LOOP, SAFETY, WAY_OUT, Design, Goal, Step

S = TypeVar("S")


# ----------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    """One state along a counterexample and the event that led to it."""

    label: str | None  # None for the initial state
    state: str  # design.describe() of the state
    time_passed: bool = False
    spawns: int = 0
    broken: tuple[str, ...] = ()  # invariants this state breaks


@dataclass(frozen=True)
class Trace:
    """A path from the initial state. ``failing`` indexes the state that fails.

    For a hot loop the path is a lasso: after its last step the system is back
    in ``steps[loop_start]``, and the steps from there on repeat forever.
    """

    steps: tuple[TraceStep, ...]
    failing: int
    loop_start: int | None = None
    #: For a wedge: the path on from the failing (last) state into the trap the
    #: system can never leave (``models.trap``); its last state is in the trap
    #: (with no steps, the failing state itself is), of ``trap_size`` states.
    onward: tuple[TraceStep, ...] = ()
    trap_size: int = 0

    @property
    def trapped(self) -> int | None:
        """The index (in ``steps + onward``) of the state shown inside the trap, if any."""
        return len(self.steps) + len(self.onward) - 1 if self.trap_size else None

    @property
    def labels(self) -> list[str]:
        """The events of the trace, in order (without the initial state)."""
        return [s.label for s in self.steps if s.label is not None]


@dataclass(frozen=True)
class Violation:
    """A property that does not hold, with its shortest counterexample."""

    property: str
    message: str
    trace: Trace
    #: More lines for the report (e.g. what can still happen in a wedged state).
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stats:
    states: int
    transitions: int
    depth: int
    seconds: float
    #: False when the search stopped early; liveness was then not checked.
    complete: bool = True
    #: Why it stopped early: the first safety violation, the state limit, or
    #: a depth that kept growing.
    stopped: str = ""

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Result:
    design: str
    title: str
    parameters: str
    expected: str | None
    violations: tuple[Violation, ...]
    stats: Stats
    checked: tuple[str, ...] = field(default=())

    @property
    def found(self) -> frozenset[str]:
        return frozenset(v.property for v in self.violations)

    @property
    def as_expected(self) -> bool:
        """A correct design passes everything; a known-bad one breaks what it should."""
        if self.expected is None:
            return self.stats.complete and not self.violations
        return self.expected in self.found

    def violation(self, prop: str) -> Violation | None:
        for v in self.violations:
            if v.property == prop:
                return v
        return None


@dataclass(frozen=True)
class Progress:
    states: int
    transitions: int
    depth: int
    frontier: int
    seconds: float


#: Past this depth a breadth-first search is not converging: wayout's models
#: end near depth 30, the zoo's below 10.
DEFAULT_MAX_DEPTH = 400
#: The property a search that never ends breaks: the state space is finite.
FINITE = "finite"


class _Stopped(Exception):
    """The search stops early; ``why`` says why."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class StateLimitReached(Exception):
    """Internal: the search hit ``max_states``."""


# ----------------------------------------------------------------------------
# The search
# ----------------------------------------------------------------------------


def explore(
    design: Design[S],
    *,
    max_states: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    stop_at_safety: bool | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_every: int = 10_000,
) -> Result:
    """Explore every reachable state of ``design`` and check its properties.

    The search stops at the first safety violation (its trace is the
    shortest, and nothing found later would make the design safe), unless
    ``stop_at_safety`` is False or the design is expected to break a liveness
    property (a zoo design must show the property it is known for). It also
    stops where the depth passes ``max_depth``: a state space that keeps
    growing breaks ``finite``, with the trace to its deepest state.
    """
    if stop_at_safety is None:
        stop_at_safety = design.expected in (None, SAFETY)
    started = time.perf_counter()
    graph = _Graph(design)
    graph.stop_at_safety = stop_at_safety
    stopped = ""
    violations: list[Violation] = []
    # The cyclic garbage collector is paused for the search: it keeps every
    # state it finds (keys are tuples of tuples, the frontier holds whole
    # cores), so each collection walks more of them, and it finds nothing to
    # collect (the states are acyclic; reference counting frees the rest).
    # A few per cent of the search. Restored as it was, however the search ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        graph.search(max_states, progress, progress_every, started, max_depth)
    except StateLimitReached:
        stopped = (f"stopped at the state limit ({len(graph.keys):,} states, depth "
                   f"{graph.max_depth}): liveness not checked")
    except _Stopped as stop:
        stopped = stop.why
    finally:
        if collecting:
            gc.enable()
    search_seconds = time.perf_counter() - started
    limit_hit = bool(stopped)

    checked = [SAFETY]
    if graph.first_broken is not None:
        violations.append(graph.safety_violation())
    if graph.max_depth > max_depth:
        checked.append(FINITE)
        violations.append(graph.growth_violation(max_depth))
    if not limit_hit:
        # Liveness over a truncated graph would blame the frontier: skip it.
        goals: list[Goal[S]] = [Goal(WAY_OUT, _always, design.quiescent), *design.goals()]
        for index, goal in enumerate(goals):
            checked.append(goal.name)
            v = graph.leads_to_violation(goal, index)
            if v is not None:
                violations.append(v)
        checked.append(NO_HOT_LOOP)
        v = graph.hot_loop_violation()
        if v is not None:
            violations.append(v)
    stats = Stats(
        states=len(graph.keys),
        transitions=graph.transitions,
        depth=graph.max_depth,
        seconds=search_seconds,
        complete=not limit_hit,
        stopped=stopped,
    )
    return Result(
        design=design.name,
        title=design.title,
        parameters=design.parameters(),
        expected=design.expected,
        violations=tuple(violations),
        stats=stats,
        checked=tuple(checked),
    )


def _always(state: object) -> bool:
    return True


class _Graph:
    """The explored state graph: keys, parents, edges, and per-state flags."""

    def __init__(self, design: Design[Any]) -> None:
        self.design = design
        self.ids: dict[Hashable, int] = {}
        self.keys: list[Hashable] = []
        self.parent = array("l")
        self.depth = array("l")
        self.max_depth = 0
        self.transitions = 0
        # Every edge, as two parallel arrays (self-loops that cannot matter are dropped).
        self.src = array("l")
        self.dst = array("l")
        # Edges in which no time passes, and whether each one spawns.
        self.zsrc = array("l")
        self.zdst = array("l")
        self.zspawn = bytearray()
        # Per goal: a flag per state for "when" and for "reach".
        self.goals: list[Goal[Any]] = [
            Goal(WAY_OUT, _always, design.quiescent),
            *design.goals(),
        ]
        self.when_flags: list[bytearray] = [bytearray() for _ in self.goals]
        self.reach_flags: list[bytearray] = [bytearray() for _ in self.goals]
        # The first safety violation: a state (its id), or a step (source id,
        # destination id, label), with the invariants broken.
        self.first_broken: int | None = None
        self.first_broken_step: tuple[int, int, str] | None = None
        self.first_broken_why: tuple[str, ...] = ()
        self.crash: dict[int, str] = {}
        self.stop_at_safety = False
        self._preds: list[list[int]] | None = None

    # --- breadth-first search ------------------------------------------------

    def _add(self, state: Any, key: Hashable, parent: int) -> int:
        sid = len(self.keys)
        self.ids[key] = sid
        self.keys.append(key)
        self.parent.append(parent)
        d = 0 if parent < 0 else self.depth[parent] + 1
        self.depth.append(d)
        if d > self.max_depth:
            self.max_depth = d
        for goal, when, reach in zip(self.goals, self.when_flags, self.reach_flags, strict=True):
            when.append(goal.when is _always or goal.when(state))
            reach.append(goal.reach(state))
        if self.first_broken is None:
            broken = self.design.invariants(state)
            if broken:
                self.first_broken = sid
                self.first_broken_why = tuple(broken)
        return sid

    def search(
        self,
        max_states: int | None,
        progress: Callable[[Progress], None] | None,
        progress_every: int,
        started: float,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        design = self.design
        keyfn = None if type(design).key is Design.key else design.key
        successors = design.search_successors
        ids = self.ids
        src, dst = self.src, self.dst
        zsrc, zdst, zspawn = self.zsrc, self.zdst, self.zspawn
        add = self._add
        limit = max_states if max_states is not None else -1

        init = design.initial()
        add(init, init if keyfn is None else keyfn(init), -1)
        frontier: deque[tuple[int, Any]] = deque([(0, init)])
        expanded = 0
        transitions = 0
        while frontier:
            sid, state = frontier.popleft()
            expanded += 1
            if progress is not None and expanded % progress_every == 0:
                self.transitions = transitions
                progress(Progress(len(self.keys), transitions, self.max_depth,
                                  len(frontier), time.perf_counter() - started))
            try:
                steps = list(successors(state))
            except Exception as exc:  # a design that raises is a design with a bug
                self.crash[sid] = f"{type(exc).__name__}: {exc}"
                if self.first_broken is None:
                    self.first_broken = sid
                    self.first_broken_why = (
                        f"{design.name} raised {type(exc).__name__}: {exc}",
                    )
                continue
            for step in steps:
                nxt = step[1]
                key = nxt if keyfn is None else keyfn(nxt)
                nid = ids.get(key)
                if nid is None:
                    if len(ids) == limit:
                        self.transitions = transitions
                        raise StateLimitReached
                    nid = add(nxt, key, sid)
                    frontier.append((nid, nxt))
                    if self.max_depth > max_depth:
                        self.transitions = transitions
                        raise _Stopped(f"depth grew past {max_depth}: a counter or a queue "
                                       "without bound")
                transitions += 1
                if step[4] and self.first_broken is None:
                    self.first_broken = sid
                    self.first_broken_step = (sid, nid, step[0])
                    self.first_broken_why = tuple(step[4])
                if self.first_broken is not None and self.stop_at_safety:
                    self.transitions = transitions
                    raise _Stopped("stopped at the first safety violation")
                timed = step[2]
                spawns = step[3]
                if nid != sid:
                    src.append(sid)
                    dst.append(nid)
                if not timed and (spawns or nid != sid):
                    zsrc.append(sid)
                    zdst.append(nid)
                    zspawn.append(1 if spawns else 0)
        self.transitions = transitions

    # --- properties ---------------------------------------------------------

    def safety_violation(self) -> Violation:
        assert self.first_broken is not None
        sid = self.first_broken
        why = self.first_broken_why
        path = self._path_to(sid)
        constraints: list[Callable[[Step[Any]], bool]] = []
        if self.first_broken_step is not None:
            _, nid, label = self.first_broken_step
            path.append(nid)
            constraints.append(lambda step: step.label == label)
        trace = self._trace(path, constraints, failing_last=True)
        return Violation(
            SAFETY,
            f"{why[0]} (after {len(path) - 1} steps)",
            trace,
            detail=why[1:],
        )

    def growth_violation(self, max_depth: int) -> Violation:
        """The trace to the deepest state: what keeps growing shows in its last states."""
        deepest = max(range(len(self.keys)), key=self.depth.__getitem__)
        path = self._path_to(deepest)
        trace = self._trace(path, [], failing_last=True)
        return Violation(
            FINITE,
            f"the search passed depth {max_depth} and kept growing: a counter or a queue "
            "without bound (the trace shows its first steps)",
            trace,
        )

    def leads_to_violation(self, goal: Goal[Any], index: int) -> Violation | None:
        n = len(self.keys)
        ok = bytearray(self.reach_flags[index])
        when = self.when_flags[index]
        if all(ok[i] or not when[i] for i in range(n)):
            return None
        # Backward closure from the goal states.
        preds = self._predecessors()
        stack = [i for i in range(n) if ok[i]]
        while stack:
            v = stack.pop()
            for u in preds[v]:
                if not ok[u]:
                    ok[u] = 1
                    stack.append(u)
        stuck = [i for i in range(n) if when[i] and not ok[i]]
        if not stuck:
            return None
        sid = stuck[0]  # lowest id: the closest to the initial state
        from models.trap import trap_path

        prefix = self._path_to(sid)
        onward, trap_size = trap_path(n, self.src, self.dst, ok, sid)
        whole = self._trace(prefix + onward[1:], [], failing_last=True)
        trace = Trace(whole.steps[:len(prefix)], failing=len(prefix) - 1,
                      onward=whole.steps[len(prefix):], trap_size=trap_size)
        possible = self._labels_from(onward[-1])
        what = "a quiescent state" if goal.name == WAY_OUT else goal.target
        trapped = trace.trapped
        inside = ("it never leaves that state" if trap_size == 1 else
                  f"it never leaves those {trap_size} states")
        detail = [f"{len(stuck)} of {n} reachable states cannot reach {what}."]
        if trace.onward:
            first = self._labels_from(sid)
            detail.append(
                f"From state {trace.failing}, the first with no way out, these events are "
                f"still possible; some move on, but none ever reaches {what}: "
                + "; ".join(first))
        detail += [
            (f"State {trapped} is trapped: {inside}. Events still possible there, each of "
             f"which keeps it inside and none of which reaches {what}: " + "; ".join(possible))
            if possible else
            f"State {trapped} is trapped: nothing can happen at all there (a deadlock "
            "within the model's bounds).",
        ]
        if goal.doc:
            detail.insert(0, goal.doc)
        if sid in self.crash:
            detail.append(f"The design raised while expanding it: {self.crash[sid]}")
        message = (
            f"after {self.depth[sid]} steps the system is in a state from which no sequence "
            f"of events reaches {what}"
        )
        return Violation(goal.name, message, trace, tuple(detail))

    def hot_loop_violation(self) -> Violation | None:
        if not any(self.zspawn):
            return None
        adj: dict[int, list[int]] = {}
        for s, d in zip(self.zsrc, self.zdst, strict=True):
            adj.setdefault(s, []).append(d)
        comp = _strongly_connected(adj)
        best: tuple[int, int] | None = None
        for s, d, spawn in zip(self.zsrc, self.zdst, self.zspawn, strict=True):
            if spawn and comp.get(s, -1) == comp.get(d, -2) and (best is None or s < best[0]):
                best = (s, d)
        if best is None:
            return None
        u, v = best
        cycle = [u, *self._zero_time_path(v, u, comp, adj)]
        prefix = self._path_to(u)
        # Constraints for the loop edges: the first must spawn, all must take no time.
        loop_edges: list[Callable[[Step[Any]], bool]] = [_spawns_at_once] + [_at_once] * (
            len(cycle) - 2)
        trace = self._trace(prefix + cycle[1:], loop_edges, failing_last=False)
        loop_start = len(prefix) - 1
        trace = Trace(trace.steps, failing=loop_start, loop_start=loop_start)
        spawned = sum(s.spawns for s in trace.steps[loop_start + 1:])
        message = (
            f"a cycle of {len(cycle) - 1} steps spawns {spawned} process(es) and returns to the "
            "same state without any time passing: a hot respawn loop"
        )
        return Violation(NO_HOT_LOOP, message, trace,
                         ("No timer separates the respawns: the loop burns a CPU forever, "
                          "and nothing in it slows down or reports the failure.",))

    def _predecessors(self) -> list[list[int]]:
        if self._preds is None:
            preds: list[list[int]] = [[] for _ in range(len(self.keys))]
            for s, d in zip(self.src, self.dst, strict=True):
                preds[d].append(s)
            self._preds = preds
        return self._preds

    # --- paths and traces ------------------------------------------------------

    def _path_to(self, sid: int) -> list[int]:
        path = []
        while sid >= 0:
            path.append(sid)
            sid = self.parent[sid]
        path.reverse()
        return path

    @staticmethod
    def _zero_time_path(start: int, goal: int, comp: dict[int, int],
                        adj: dict[int, list[int]]) -> list[int]:
        """Shortest zero-time path start..goal (inclusive of both), inside one component."""
        component = comp[goal]
        prev: dict[int, int] = {start: -1}
        todo = deque([start])
        while todo:
            x = todo.popleft()
            if x == goal:
                break
            for y in adj.get(x, ()):
                if y not in prev and comp.get(y) == component:
                    prev[y] = x
                    todo.append(y)
        path = [goal]
        while path[-1] != start:
            path.append(prev[path[-1]])
        path.reverse()
        return path

    def _labels_from(self, sid: int) -> list[str]:
        state = self._replay(self._path_to(sid), [])[-1][1]
        try:
            return sorted({step.label for step in self.design.successors(state)})
        except Exception as exc:
            return [f"(the design raised {type(exc).__name__}: {exc})"]

    def _replay(self, path: Sequence[int], constraints: Sequence[Callable[[Step[Any]], bool]],
                ) -> list[tuple[Step[Any] | None, Any]]:
        """Re-run the design along ``path`` (state ids), returning each step and state.

        ``constraints`` must hold for the last edges of the path, one each.
        """
        design = self.design
        state = design.initial()
        out: list[tuple[Step[Any] | None, Any]] = [(None, state)]
        first_constrained = len(path) - 1 - len(constraints)
        for i in range(1, len(path)):
            want = self.keys[path[i]]
            c = constraints[i - 1 - first_constrained] if i - 1 >= first_constrained else None
            for step in design.successors(state):
                if c is not None and not c(step):
                    continue
                if design.key(step.state) == want:
                    state = step.state
                    out.append((step, state))
                    break
            else:  # pragma: no cover - only a nondeterministic design gets here
                raise RuntimeError(
                    f"{design.name}: replay diverged at step {i}; successors() must be a "
                    "function of the state alone"
                )
        return out

    def _trace(self, path: Sequence[int], constraints: Sequence[Callable[[Step[Any]], bool]],
               *, failing_last: bool) -> Trace:
        design = self.design
        steps = []
        for step, state in self._replay(path, constraints):
            steps.append(TraceStep(
                label=None if step is None else step.label,
                state=design.describe(state),
                time_passed=False if step is None else bool(step.time_passed),
                spawns=0 if step is None else step.spawns,
                broken=tuple(design.invariants(state)) + (() if step is None else step.broken),
            ))
        return Trace(tuple(steps), failing=len(steps) - 1 if failing_last else 0)


def _at_once(step: Step[Any]) -> bool:
    return not step.time_passed


def _spawns_at_once(step: Step[Any]) -> bool:
    return not step.time_passed and step.spawns > 0


def _strongly_connected(adj: dict[int, list[int]]) -> dict[int, int]:
    """Tarjan's algorithm, iterative: node -> component number."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    comp: dict[int, int] = {}
    counter = 0
    ncomp = 0
    for root in adj:
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, i = work[-1]
            succ = adj.get(node, ())
            if i < len(succ):
                work[-1] = (node, i + 1)
                nxt = succ[i]
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp[x] = ncomp
                    if x == node:
                        break
                ncomp += 1
    return comp


# ----------------------------------------------------------------------------
# Bounded search from one state (for stateful tests)
# ----------------------------------------------------------------------------


def reaches(
    design: Design[S],
    state: S,
    goal: Callable[[S], bool] | None = None,
    *,
    max_states: int = 5_000,
) -> bool | None:
    """Is a state satisfying ``goal`` (default: quiescent) reachable from ``state``?

    True if found, False if every reachable state was seen and none satisfies
    it (certainly no way out), None if ``max_states`` ran out first. The
    silent world is tried first (``design.silent_step``), then steps in which
    time passes before the others (a 0-1 breadth-first search that counts
    only the other events), because a design with a way out usually gets
    there by its deadlines alone, while the world stays silent.
    """
    target = design.quiescent if goal is None else goal
    # First the silent world: follow the deadlines alone while they lead somewhere new.
    probe: S | None = state
    probed: set[Hashable] = set()
    while probe is not None and len(probed) < max_states:
        if target(probe):
            return True
        key = design.key(probe)
        if key in probed:
            break
        probed.add(key)
        step = design.silent_step(probe)
        probe = None if step is None else step.state
    seen: set[Hashable] = {design.key(state)}
    todo: deque[S] = deque([state])
    while todo:
        s = todo.popleft()
        if target(s):
            return True
        for step in design.successors(s):
            k = design.key(step.state)
            if k in seen:
                continue
            if len(seen) >= max_states:
                return None
            seen.add(k)
            if step.time_passed:
                todo.appendleft(step.state)
            else:
                todo.append(step.state)
    return False
