"""Declarative lifecycles, checked when they are built.

A lifecycle is a finite set of states and the events that move an object
between them. wayout adds one rule that ordinary state machines do not have:
**no state is without a way out**. Concretely, a ``LifecycleSpec`` is refused
at construction unless

* every non-final state has exactly one timeout, naming the *setting* that
  holds its duration (e.g. ``"initialize_timeout"``) and the state it leads to;
* final states have neither outgoing transitions nor a timeout;
* every state is reachable from the initial state;
* every state can reach some final state (otherwise it is a trap);
* no two transitions leave the same state on the same event (the machine is
  deterministic, so a model checker and the runtime agree on what happens);
* every transition names known states.

Timeouts are data here. This module does no I/O and starts no timers: the
supervisor core arms deadlines from these declarations and the runtime sleeps
until the earliest one. The timeout edge of a state is exposed as an ordinary
transition on the event ``"timeout"`` so that the one machine built from the
spec serves the runtime, the checker and the diagrams alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fsm.errors import SpecError

#: The event that fires when a state's deadline passes.
TIMEOUT = "timeout"


@dataclass(frozen=True)
class State:
    """One state of a lifecycle.

    ``timeout`` names the duration setting that bounds the time spent here and
    ``on_timeout`` the state entered when it passes. Final states have neither.
    ``missed`` says in words what the object failed to do when that deadline
    passed (``"sent no hello"``), where the core reports the timeout by it (a
    child's kill); other states leave it empty.
    """

    name: str
    timeout: str | None = None
    on_timeout: str | None = None
    final: bool = False
    doc: str = ""
    missed: str = ""


@dataclass(frozen=True)
class Transition:
    """``event`` moves an object from ``source`` (one state or several) to ``dest``."""

    event: str
    source: str | tuple[str, ...]
    dest: str
    doc: str = ""

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else tuple(self.source)


@dataclass(frozen=True)
class Edge:
    """One resolved edge of the lifecycle graph; ``timeout`` is set on timeout edges."""

    source: str
    event: str
    dest: str
    timeout: str | None = None


@dataclass(frozen=True, eq=False)
class LifecycleSpec:
    """A validated lifecycle. Raises ``SpecError`` on construction if it breaks a rule."""

    name: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    initial: str
    doc: str = ""
    # Derived views, computed once in __post_init__.
    _by_name: Mapping[str, State] = field(init=False, repr=False)
    _successor: Mapping[tuple[str, str], str] = field(init=False, repr=False)
    _edges: tuple[Edge, ...] = field(init=False, repr=False)

    def __init__(
        self,
        name: str,
        states: Iterable[State],
        transitions: Iterable[Transition],
        initial: str,
        doc: str = "",
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "states", tuple(states))
        object.__setattr__(self, "transitions", tuple(transitions))
        object.__setattr__(self, "initial", initial)
        object.__setattr__(self, "doc", doc)
        self._validate()

    # --- queries -----------------------------------------------------------

    def state(self, name: str) -> State:
        try:
            return self._by_name[name]
        except KeyError:
            raise SpecError(f"lifecycle {self.name!r} has no state {name!r}") from None

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def final_states(self) -> frozenset[str]:
        return frozenset(s.name for s in self.states if s.final)

    @property
    def edges(self) -> tuple[Edge, ...]:
        """Every edge, the declared transitions first, then one timeout edge per state."""
        return self._edges

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(sorted({e.event for e in self._edges}))

    def successor(self, state: str, event: str) -> str | None:
        """Where ``event`` leads from ``state``, or None if it is not allowed there."""
        return self._successor.get((state, event))

    @property
    def successor_map(self) -> Mapping[tuple[str, str], str]:
        """The edge map ``successor`` reads, (state, event) -> state: for the
        core's hot path, which looks it up once per transition."""
        return self._successor

    @property
    def timeouts(self) -> Mapping[str, str | None]:
        """Each state's timeout setting (None for final states), by state name."""
        return {name: st.timeout for name, st in self._by_name.items()}

    def sources(self, event: str) -> frozenset[str]:
        """The states in which ``event`` is allowed (the sources of its edges)."""
        return frozenset(src for (src, ev) in self._successor if ev == event)

    def triggers(self, state: str) -> tuple[str, ...]:
        """The events allowed in ``state``."""
        return tuple(sorted(ev for (src, ev) in self._successor if src == state))

    def is_final(self, state: str) -> bool:
        return self.state(state).final

    # --- validation ----------------------------------------------------------

    def _fail(self, what: str) -> SpecError:
        return SpecError(f"lifecycle {self.name!r}: {what}")

    def _validate(self) -> None:
        by_name: dict[str, State] = {}
        for st in self.states:
            if st.name in by_name:
                raise self._fail(f"state {st.name!r} is declared twice")
            if st.name == "" or not st.name.isidentifier():
                raise self._fail(f"state {st.name!r} is not an identifier")
            by_name[st.name] = st
        if self.initial not in by_name:
            raise self._fail(f"initial state {self.initial!r} is not a declared state")

        edges: list[Edge] = []
        for tr in self.transitions:
            if tr.event == TIMEOUT:
                src = tr.sources[0] if tr.sources else "?"
                declared = src in by_name and by_name[src].timeout is not None
                raise self._fail(
                    (f"state {src!r} has more than one timeout" if declared
                     else f"state {src!r} declares its timeout as a transition")
                    + f": declare it once, as State({src!r}, timeout=..., on_timeout=...)"
                )
            if not tr.event.isidentifier():
                raise self._fail(f"event {tr.event!r} is not an identifier")
            if not tr.sources:
                raise self._fail(f"event {tr.event!r} has no source state")
            for src in tr.sources:
                for end, role in ((src, "source"), (tr.dest, "destination")):
                    if end not in by_name:
                        raise self._fail(
                            f"event {tr.event!r} names unknown {role} state {end!r}"
                        )
                edges.append(Edge(src, tr.event, tr.dest))

        for st in self.states:
            if st.final:
                if st.timeout is not None or st.on_timeout is not None:
                    raise self._fail(f"final state {st.name!r} has a timeout")
                continue
            if st.timeout is None or st.on_timeout is None:
                raise self._fail(
                    f"non-final state {st.name!r} has no timeout: every state that is "
                    "not final needs timeout=<setting> and on_timeout=<state>"
                )
            if st.on_timeout not in by_name:
                raise self._fail(
                    f"timeout of state {st.name!r} names unknown state {st.on_timeout!r}"
                )
            edges.append(Edge(st.name, TIMEOUT, st.on_timeout, st.timeout))

        successor: dict[tuple[str, str], str] = {}
        for e in edges:
            if by_name[e.source].final:
                raise self._fail(
                    f"final state {e.source!r} has an outgoing transition on {e.event!r}"
                )
            key = (e.source, e.event)
            if key in successor:
                raise self._fail(
                    f"state {e.source!r} has two transitions on event {e.event!r} "
                    f"(to {successor[key]!r} and {e.dest!r}): the lifecycle must be "
                    "deterministic"
                )
            successor[key] = e.dest

        forward: dict[str, set[str]] = {n: set() for n in by_name}
        backward: dict[str, set[str]] = {n: set() for n in by_name}
        for e in edges:
            forward[e.source].add(e.dest)
            backward[e.dest].add(e.source)

        reachable = _closure([self.initial], forward)
        for st in self.states:
            if st.name not in reachable:
                raise self._fail(
                    f"state {st.name!r} is unreachable from the initial state {self.initial!r}"
                )
        finals = [n for n, s in by_name.items() if s.final]
        if not finals:
            raise self._fail("it has no final state, so every state is a trap")
        escapes = _closure(finals, backward)
        for st in self.states:
            if st.name not in escapes:
                raise self._fail(
                    f"state {st.name!r} cannot reach any final state: "
                    "it is a trap, a state with no way out"
                )

        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_successor", successor)
        object.__setattr__(self, "_edges", tuple(edges))

    # --- the readable report ---------------------------------------------------

    def longest_timeout_chain(self) -> list[Edge]:
        """The longest chain of timeout edges from any state to a final state.

        It tells how many deadlines in a row can pass before an object is
        certainly final, even if nothing else ever happens.
        """
        timeout_of = {e.source: e for e in self._edges if e.timeout is not None}
        best: list[Edge] = []
        for start in self.state_names:
            chain: list[Edge] = []
            seen: set[str] = set()
            cur = start
            while cur in timeout_of and cur not in seen:
                seen.add(cur)
                edge = timeout_of[cur]
                chain.append(edge)
                cur = edge.dest
            if cur in self.final_states and len(chain) > len(best):
                best = chain
        return best

    def check(self) -> str:
        """A readable report: states, events, timeout edges and the longest timeout chain."""
        lines = [f"lifecycle {self.name}: OK (initial {self.initial})"]
        finals = ", ".join(sorted(self.final_states))
        lines.append(f"  states ({len(self.states)}): {', '.join(self.state_names)}")
        lines.append(f"  final: {finals}")
        lines.append(f"  events ({len(self.events)}): {', '.join(self.events)}")
        lines.append("  timeouts:")
        for e in self._edges:
            if e.timeout is not None:
                lines.append(f"    {e.source} --{e.timeout}--> {e.dest}")
        chain = self.longest_timeout_chain()
        path = " -> ".join([chain[0].source, *(e.dest for e in chain)]) if chain else "-"
        settings = " + ".join(e.timeout or "" for e in chain)
        lines.append(f"  longest timeout chain to a final state: {path} ({settings})")
        return "\n".join(lines)


def _closure(start: Iterable[str], graph: Mapping[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = deque(seen)
    while todo:
        for nxt in graph[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
