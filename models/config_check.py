"""``wayout check --config``: wayout's core with the ordering of a user's own durations.

wayout's own model (``models.wayout.model_config``) uses the smallest integer
durations that keep the orderings that matter. A user's ``PoolConfig`` has
other orderings: ``order_preserving`` maps its durations to the smallest
integers that keep the order and the ties of every duration, and of the sums
that decide a hazard (``spawn_timeout + initialize_timeout`` against
``queue_timeout``), so the model explores the user's pool's orderings with
a small state space.

Some settings are wrong whatever the world does. Each such *hazard* is a
goal of a small timeline design (``ColdStart``) run by the same explorer, so
that it is reported as any failed goal: with a trace from the start into the
trap, and a one-line fix.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from fsm.config import PoolConfig
from models.design import Design, Goal, Step

#: The duration settings of a PoolConfig (seconds).
DURATIONS = tuple(f.name for f in fields(PoolConfig) if f.type == "float"
                  and not f.name.startswith("memory_"))
#: Sums whose order against a single duration decides a hazard: (terms, the other side).
SUMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("spawn_timeout", "initialize_timeout"), "queue_timeout"),
)
#: The largest integer order_preserving tries before it gives up on the sums.
LARGEST = 40


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def order_preserving(config: PoolConfig) -> PoolConfig:
    """``config`` with every duration replaced by a small integer (as a float) such that
    any two durations compare as before (ties stay ties), and so does each of ``SUMS``.
    """
    values = sorted({float(getattr(config, n)) for n in DURATIONS})
    wanted = [(terms, other, _sign(sum(float(getattr(config, t)) for t in terms)
                                   - float(getattr(config, other)))) for terms, other in SUMS]

    def fits(mapping: dict[float, int]) -> bool:
        return all(
            _sign(sum(mapping[float(getattr(config, t))] for t in terms)
                  - mapping[float(getattr(config, other))]) == sign
            for terms, other, sign in wanted)

    k = len(values)
    for top in range(k, LARGEST + 1):
        for chosen in itertools.combinations(range(1, top + 1), k):
            if chosen[-1] != top:
                continue
            mapping = dict(zip(values, chosen, strict=True))
            if fits(mapping):
                return _mapped(config, mapping)
    # No small mapping keeps the sums: keep the order alone (the hazards are static anyway).
    return _mapped(config, {v: i + 1 for i, v in enumerate(values)})


def _mapped(config: PoolConfig, mapping: dict[float, int]) -> PoolConfig:
    changes: dict[str, Any] = {n: float(mapping[float(getattr(config, n))]) for n in DURATIONS}
    return replace(config, **changes)


def model_of(config: PoolConfig, *, children: int = 2, restarts: int = 1) -> PoolConfig:
    """The config the model explores: the user's ordering, its sizes capped to small bounds."""
    ordered = order_preserving(config)
    most = max(1, min(config.max_children, children))
    return replace(ordered, max_children=most, num_idle=min(config.num_idle, most),
                   max_restarts=min(config.max_restarts, restarts),
                   max_jobs_per_child=config.max_jobs_per_child and min(
                       config.max_jobs_per_child, 2), memory_warn_mb=None, memory_limit_mb=None,
                   initializer=None, initargs=())


# ----------------------------------------------------------------------------
# Hazards: settings that fail whatever the world does
# ----------------------------------------------------------------------------


class Moment(NamedTuple):
    """One instant of the cold start: how far along the timeline, and the job's fate."""

    step: int
    job: str  # "queued" | "done" | "failed: NoCapacity"


@dataclass(frozen=True)
class _Event:
    at: float
    label: str
    job: str | None = None  # the job's outcome after this event, if it changes


class ColdStart(Design[Moment]):
    """A job submitted to a cold pool, whose first child uses its whole budgets.

    The pool has no warm child (just started, or after every child failed):
    the job waits while a child is spawned and initialized, each within its
    own timeout. The explorer checks the goal "the job is served"; with
    ``queue_timeout < spawn_timeout + initialize_timeout`` the job's queue
    deadline fires first, whatever the world does within those timeouts.
    """

    name = "config-cold-start"
    title = "a job submitted to a cold pool, while its first child starts within its budgets"

    def __init__(self, config: PoolConfig) -> None:
        c = config
        self.config = c
        ready = c.spawn_timeout + c.initialize_timeout
        events = [
            _Event(c.spawn_timeout, f"child 0's process starts, at spawn_timeout "
                   f"{c.spawn_timeout:g}s"),
            _Event(ready, f"child 0 is ready, at spawn_timeout + initialize_timeout = "
                   f"{ready:g}s", job="done"),
            _Event(c.queue_timeout, f"job 0's queue_timeout fires, at {c.queue_timeout:g}s",
                   job="failed: NoCapacity"),
        ]
        # The core fires a deadline before taking a message of the same instant.
        self.events = sorted(events, key=lambda e: (e.at, e.job != "failed: NoCapacity"))

    def parameters(self) -> str:
        c = self.config
        return (f"spawn_timeout={c.spawn_timeout:g} initialize_timeout="
                f"{c.initialize_timeout:g} queue_timeout={c.queue_timeout:g}")

    def initial(self) -> Moment:
        return Moment(0, "queued")

    def successors(self, s: Moment) -> Iterator[Step[Moment]]:
        if s.step == len(self.events):
            return
        e = self.events[s.step]
        job = s.job if e.job is None or s.job != "queued" else e.job
        suffix = "" if job == s.job else f": job 0 {job}"
        yield Step(e.label + suffix, Moment(s.step + 1, job), time_passed=True)

    def quiescent(self, s: Moment) -> bool:
        return s.job != "queued"

    def goals(self) -> Sequence[Goal[Moment]]:
        c = self.config
        return (Goal(
            "cold_start_serves",
            when=lambda s: s.job == "queued",
            reach=lambda s: s.job == "done",
            target="the job served",
            doc=(f"hazard: queue_timeout={c.queue_timeout:g}s is shorter than spawn_timeout + "
                 f"initialize_timeout = {c.spawn_timeout + c.initialize_timeout:g}s, so a job "
                 "on a cold pool fails NoCapacity before a child that uses its budgets is "
                 f"ready. Fix: raise queue_timeout above "
                 f"{c.spawn_timeout + c.initialize_timeout:g}s (or keep num_idle >= 1 and "
                 "lower spawn_timeout/initialize_timeout)."),
        ),)

    def describe(self, s: Moment) -> str:
        past = self.events[:s.step]
        at = f"t={past[-1].at:g}s" if past else "t=0: the pool is cold; job 0 is submitted"
        return f"{at}\njob 0: {s.job}"


def hazard_designs(config: PoolConfig) -> list[Design[Moment]]:
    """The timeline designs of the hazards ``config`` may have (each one checks itself)."""
    return [ColdStart(config)]
