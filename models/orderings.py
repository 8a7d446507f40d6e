"""Durations as orderings: wayout's core under a covering set of duration orderings.

The core never reads a duration except to arm a deadline (``now +
duration``), and it compares deadlines only by time: which one is due first,
whether one is due yet (``fsm.core``: ``_on_deadline``, ``next_deadline``,
the restart window, the back-off delay). So what a set of durations decides
is an *ordering*: which of two deadlines fires first, or both at once. Two
deadlines armed at different instants race through the time between those
instants, which the world chooses (a message may come at any time); two
deadlines armed by one event race on their durations alone, and no world can
change who wins. Those races are what one fixed assignment of durations
(``models.wayout.model_config``) leaves unchecked.

Which deadlines does one event arm together? Any two, given enough children
and jobs: a child's failure arms its ``kill_timeout``, a back-off delay, the
``restart_window`` of its failure and a replacement's ``spawn_timeout``; a
submit to a ready child arms ``ack_timeout``, the child's ``ping_timeout``
and a replacement's ``spawn_timeout``; and so on for every event. So the
covering set asks for every *pair* of duration settings in every relation
(``<``, ``=``, ``>``), and for every weak ordering (ties included) of the
three-way races of ``TRIPLES`` and of the sums of ``SUMS`` (a chain of
deadlines of one child against one deadline armed with its first link). A
relation ``PoolConfig`` refuses (``ping_timeout <= ping_interval``,
``backoff_max < backoff_initial``) is left out: it is asked of
``PoolConfig`` itself, never written here.

``covering_orderings()`` finds a small set of assignments of small integers
that realises every such pattern (a greedy covering array over a fixed,
seeded sample of valid assignments; tests/models/test_orderings.py checks
that every feasible pattern is covered and counts them). What it does not
cover: a fault that needs a four-way race, or two races decided at once in
one particular combination beyond what the set happens to contain.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, NamedTuple

from fsm.config import PoolConfig
from fsm.errors import ConfigError
from models.config_check import DURATIONS
from models.design import Design, Goal, Step
from models.wayout import WayoutDesign, model_config

#: A term of a race: one duration setting, or the sum of a chain of them.
Term = tuple[str, ...]

#: The job's own timeout (``submit(timeout=...)``): a duration too, the
#: caller's, which the core must use instead of the pool's ``job_timeout``.
SUBMIT_TIMEOUT = "submit_timeout"
#: Every duration an ordering orders: the PoolConfig settings, and the submit's.
ORDERED = (*DURATIONS, SUBMIT_TIMEOUT)

#: Three-way races: three deadlines one event arms together, each weak
#: ordering of the three possibly deciding something on its own.
TRIPLES: tuple[tuple[str, str, str], ...] = (
    # A submit to the one ready child: the job's ack, the busy child's
    # ping_timeout, and the replacement the pool spawns to stay warm.
    ("ack_timeout", "ping_timeout", "spawn_timeout"),
    # A child's failure: the back-off delay, the failure's time in the
    # restart window, and the replacement's spawn.
    ("backoff_initial", "restart_window", "spawn_timeout"),
    # The start: the pool's start_timeout, the first children's spawn, the heartbeat.
    ("start_timeout", "spawn_timeout", "ping_interval"),
    # A lost ack: the job's unacked and the child's failed deadlines (both
    # kill_timeout), against the job's own timeout had it been acked.
    ("ack_timeout", "kill_timeout", "job_timeout"),
    # A cancel: the job's and the child's close_timeout, then the kill.
    ("close_timeout", "kill_timeout", "job_timeout"),
)
#: Chains against one deadline armed with their first link: a cold start
#: (spawn, then initialize) against the job's queue budget and the pool's start.
SUMS: tuple[tuple[Term, Term], ...] = (
    (("spawn_timeout", "initialize_timeout"), ("queue_timeout",)),
    (("spawn_timeout", "initialize_timeout"), ("start_timeout",)),
)
#: The integers an assignment may use: small values keep the state space small.
#: Three values give every weak ordering of three terms; a fourth is drawn
#: only for the patterns three cannot give (ping_timeout must exceed
#: ping_interval, so ping_interval ranked last of three needs a 4).
VALUES = (1, 2, 3)
MORE_VALUES = (1, 2, 3, 4)
#: The sample of valid assignments the covering set is chosen from (fixed seed).
SAMPLE = 1500
SEED = 14


class Target(NamedTuple):
    """A race whose every weak ordering must be checked: its terms, and a name for reports."""

    terms: tuple[Term, ...]

    @property
    def name(self) -> str:
        return " / ".join("+".join(t) for t in self.terms)


def targets() -> tuple[Target, ...]:
    """Every pair of duration settings, the three-way races, the sums."""
    pairs = [Target(((a,), (b,))) for a, b in itertools.combinations(ORDERED, 2)]
    triples = [Target(tuple((n,) for n in t)) for t in TRIPLES]
    sums = [Target((a, b)) for a, b in SUMS]
    return (*pairs, *triples, *sums)


def pattern(values: dict[str, float], terms: Sequence[Term]) -> tuple[int, ...]:
    """The weak ordering of ``terms`` under ``values``: each term's dense rank (ties equal)."""
    sums = [sum(values[n] for n in t) for t in terms]
    ranks = {v: i for i, v in enumerate(sorted(set(sums)))}
    return tuple(ranks[s] for s in sums)


Pattern = tuple[int, tuple[int, ...]]


def _valid(values: dict[str, float]) -> bool:
    """Whether PoolConfig accepts these durations (its own rules decide, not a copy here)."""
    settings: dict[str, Any] = {n: values[n] for n in DURATIONS}
    try:
        PoolConfig(**settings)
    except ConfigError:
        return False
    return True


def _defaults() -> dict[str, float]:
    base = model_config()
    # The model's own submits pass no timeout: the job's is the pool's.
    return {**{n: float(getattr(base, n)) for n in DURATIONS},
            SUBMIT_TIMEOUT: float(base.job_timeout)}


class Coverage(NamedTuple):
    #: The assignments, the model's own (``model_config``) first.
    assignments: tuple[dict[str, float], ...]
    #: Every weak ordering of every target that some valid assignment realises.
    feasible: frozenset[tuple[int, tuple[int, ...]]]
    covered: frozenset[tuple[int, tuple[int, ...]]]


@lru_cache(maxsize=1)
def coverage() -> Coverage:
    """A covering set of valid assignments, chosen greedily from a seeded sample."""
    all_targets = targets()
    rng = random.Random(SEED)
    first = _defaults()
    bits: dict[Pattern, int] = {}

    pairs = [(i, t.terms[0][0], t.terms[1][0]) for i, t in enumerate(all_targets)
             if len(t.terms) == 2 and len(t.terms[0]) == len(t.terms[1]) == 1]
    others = [(i, t.terms) for i, t in enumerate(all_targets)
              if not (len(t.terms) == 2 and len(t.terms[0]) == len(t.terms[1]) == 1)]
    relation: dict[int, tuple[int, ...]] = {-1: (0, 1), 0: (0, 0), 1: (1, 0)}

    def mask(values: dict[str, float]) -> int:
        # The hot loop (a few thousand assignments): pairs without pattern().
        m = 0
        for i, a, b in pairs:
            x, y = values[a], values[b]
            m |= 1 << bits.setdefault((i, relation[(x > y) - (x < y)]), len(bits))
        for i, terms in others:
            m |= 1 << bits.setdefault((i, pattern(values, terms)), len(bits))
        return m

    covered = mask(first)
    chosen = [first]
    # Small values first (each larger value is more distinct relative times,
    # hence more states), then the fourth value for what three cannot give.
    for values_allowed in (VALUES, MORE_VALUES):
        sample: list[dict[str, float]] = []
        while len(sample) < SAMPLE:
            values = {n: float(rng.choice(values_allowed)) for n in ORDERED}
            if _valid(values):
                sample.append(values)
        found = [mask(v) for v in sample]
        while True:
            best = max(range(len(sample)), key=lambda i: (
                (found[i] & ~covered).bit_count(), -sum(sample[i].values())))
            if not found[best] & ~covered:
                break
            chosen.append(sample[best])
            covered |= found[best]
    names = {b: p for p, b in bits.items()}
    return Coverage(tuple(chosen), frozenset(bits),
                    frozenset(names[b] for b in range(len(bits)) if covered >> b & 1))


def covering_orderings() -> tuple[dict[str, float], ...]:
    """The duration assignments the orderings models check (``model_config``'s first)."""
    return coverage().assignments


def describe_assignment(values: dict[str, float]) -> str:
    """The durations as an ordering: ``ack_timeout=kill_timeout < job_timeout ...``."""
    groups: dict[float, list[str]] = {}
    for n in ORDERED:
        if n in values:
            groups.setdefault(values[n], []).append(n.removesuffix("_timeout"))
    return " < ".join(f"{'='.join(groups[v])} ({v:g})" for v in sorted(groups))


# ----------------------------------------------------------------------------
# The models: one design whose first step picks the ordering
# ----------------------------------------------------------------------------


class Choice(NamedTuple):
    """A state of the orderings model: which assignment, and the inner model's state."""

    which: int
    inner: Any


_ROOT = Choice(-1, None)


class Orderings(Design[Choice]):
    """wayout's model once per covering assignment of durations, as one state space.

    The first step picks the assignment (its label names the ordering), so
    a counterexample starts with the durations that break the core, and the
    explorer checks every property over all of them in one search.
    """

    def __init__(self, inner: Sequence[WayoutDesign], name: str, title: str) -> None:
        self.inner = tuple(inner)
        self.name = name
        self.title = title
        self.expected = None
        self.source = "fsm/core.py"
        self._goals = tuple(self._wrap(g) for g in self.inner[0].goals())

    @property
    def orderings(self) -> int:
        return len(self.inner)

    def parameters(self) -> str:
        return f"{self.inner[0].parameters()} orderings={len(self.inner)}"

    def initial(self) -> Choice:
        return _ROOT

    def successors(self, state: Choice) -> Iterator[Step[Choice]]:
        if state.which < 0:
            for i, d in enumerate(self.inner):
                yield Step(f"durations {describe_assignment(_values(d))}",
                           Choice(i, d.initial()))
            return
        which = state.which
        for step in self.inner[which].successors(state.inner):
            yield _wrapped(step, which)

    def search_successors(self, state: Choice) -> Iterable[Step[Choice]]:
        if state.which < 0:
            return self.successors(state)
        which = state.which
        return [_wrapped(step, which)
                for step in self.inner[which].search_successors(state.inner)]

    def silent_step(self, state: Choice) -> Step[Choice] | None:
        if state.which < 0:
            return None
        step = self.inner[state.which].silent_step(state.inner)
        return None if step is None else _wrapped(step, state.which)

    def quiescent(self, state: Choice) -> bool:
        return state.which >= 0 and self.inner[state.which].quiescent(state.inner)

    def invariants(self, state: Choice) -> Sequence[str]:
        return () if state.which < 0 else self.inner[state.which].invariants(state.inner)

    def key(self, state: Choice) -> Any:
        return None if state.which < 0 else (state.which,
                                             self.inner[state.which].key(state.inner))

    def describe(self, state: Choice) -> str:
        if state.which < 0:
            return f"{len(self.inner)} orderings of the durations to choose from"
        return self.inner[state.which].describe(state.inner)

    def goals(self) -> Sequence[Goal[Choice]]:
        return self._goals

    @staticmethod
    def _wrap(goal: Goal[Any]) -> Goal[Choice]:
        return Goal(goal.name,
                    when=lambda s: s.which >= 0 and goal.when(s.inner),
                    reach=lambda s: s.which >= 0 and goal.reach(s.inner),
                    target=goal.target, doc=goal.doc)


def _wrapped(step: Step[Any], which: int) -> Step[Choice]:
    return Step(step.label, Choice(which, step.state), step.time_passed, step.spawns,
                step.broken)


def _values(design: WayoutDesign) -> dict[str, float]:
    values = {n: float(getattr(design.config, n)) for n in DURATIONS}
    if design.timeout is not None:
        values[SUBMIT_TIMEOUT] = design.timeout
    return values


def orderings_model(cls: type[WayoutDesign], children: int, jobs: int, restarts: int,
                    name: str, title: str,
                    assignments: Sequence[dict[str, float]] | None = None,
                    **options: Any) -> Orderings:
    """``cls`` at these bounds once per covering assignment (or per ``assignments``)."""
    chosen = covering_orderings() if assignments is None else assignments
    inner = []
    for i, values in enumerate(chosen):
        settings: dict[str, Any] = {n: values[n] for n in DURATIONS}
        config = replace(model_config(children, None, restarts), **settings)
        # The first (the model's own) submits as the default models do, without
        # a timeout; the others pass theirs.
        timeout = None if i == 0 and assignments is None else values.get(SUBMIT_TIMEOUT)
        inner.append(cls(children, jobs, restarts, config=config, timeout=timeout, **options))
    return Orderings(inner, name, title)


__all__ = [
    "SUMS",
    "TRIPLES",
    "Orderings",
    "coverage",
    "covering_orderings",
    "describe_assignment",
    "orderings_model",
    "pattern",
    "targets",
]
