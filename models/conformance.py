"""Trace conformance: replay recorded transitions against the lifecycle specs.

The runtime records every state change the core reports (``Transitioned``
commands, kept by ``Pool.transitions()`` as ``TransitionRecord``). This module
replays such a trace, object by object, through the one definition of each
lifecycle (``fsm.lifecycles``) and reports every record the specs do not
allow, so that the runtime and the model can never drift apart silently:

* a child or job must be created (source ``""``) into its lifecycle's initial
  state, exactly once; the pool exists from the start in its initial state;
* every later record must leave the state the object is in (continuity) and
  ``spec.successor(source, event)`` must be its destination;
* nothing happens to an object after it reached a final state, and time never
  goes backwards.

Given the objects the core still holds (``live_states(core)``), it also
reports objects whose current state disagrees with their history: a live
object in another state than its last record says, an object the core
forgot although its history did not end in a final state, or one the core
holds that the trace never mentioned.

Pure: it reads data and returns data (no I/O, no clock), so it runs on traces
from tests, soaks and logs alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fsm.lifecycles import ALL
from fsm.spec import LifecycleSpec

#: Kinds whose single object exists before any record (it is not "created").
IMPLICIT_KINDS = frozenset({"pool"})


class Record(Protocol):
    """What a trace entry needs: ``TransitionRecord`` and ``Transitioned`` both fit."""

    @property
    def kind(self) -> str: ...
    @property
    def ident(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def dest(self) -> str: ...


@dataclass(frozen=True)
class Violation:
    """One thing the specs do not allow. ``index`` is the record's position, or None."""

    kind: str
    ident: int
    message: str
    index: int | None = None

    def __str__(self) -> str:
        where = "at the end" if self.index is None else f"record {self.index}"
        return f"{where}: {self.kind} {self.ident}: {self.message}"


@dataclass(frozen=True)
class ConformanceReport:
    """The replay of one trace: each object's state and whatever broke the specs."""

    records: int
    #: (kind, ident) -> the state its history ends in
    states: Mapping[tuple[str, int], str]
    violations: tuple[Violation, ...] = ()
    #: (kind, state) -> objects of that kind in that state, after the replay
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        if self.ok:
            return f"trace of {self.records} records conforms to the lifecycle specs"
        shown = "\n  ".join(str(v) for v in self.violations[:20])
        more = len(self.violations) - 20
        tail = f"\n  ... and {more} more" if more > 0 else ""
        return (f"trace of {self.records} records breaks the lifecycle specs "
                f"({len(self.violations)} violations):\n  {shown}{tail}")


def replay(
    records: Iterable[Record],
    specs: Iterable[LifecycleSpec] = ALL,
    *,
    complete: bool = True,
    time_of: Any = None,
) -> ConformanceReport:
    """Replay ``records`` in order through ``specs`` (by ``spec.name == record.kind``).

    With ``complete`` False the trace may start mid-history (a bounded
    ``Pool.transitions()`` that dropped its oldest records): an object first
    seen in a non-creation record is taken to be in that record's source.
    ``time_of`` extracts a record's time (default: its ``time`` or ``now``
    attribute, when it has one) to check that time never goes backwards.
    """
    by_kind = {spec.name: spec for spec in specs}
    states: dict[tuple[str, int], str] = {}
    violations: list[Violation] = []
    last_time: float | None = None
    count = 0
    for index, rec in enumerate(records):
        count += 1
        kind, ident = rec.kind, rec.ident
        key = (kind, ident)

        def bad(message: str, kind: str = kind, ident: int = ident, index: int = index) -> None:
            violations.append(Violation(kind, ident, message, index))

        t = _time(rec, time_of)
        if t is not None:
            if last_time is not None and t < last_time:
                bad(f"time went backwards ({t} after {last_time}) on "
                    f"{rec.source or '<create>'} --{rec.event}--> {rec.dest}")
            last_time = t if last_time is None else max(last_time, t)

        spec = by_kind.get(kind)
        if spec is None:
            bad(f"no lifecycle named {kind!r}")
            continue
        if rec.source == "":
            if kind in IMPLICIT_KINDS:
                bad(f"the {kind} is not created by a record (it exists from the start), "
                    f"got <create> --{rec.event}--> {rec.dest}")
            elif key in states:
                bad(f"created again (--{rec.event}--> {rec.dest}) while {states[key]}")
            elif rec.dest != spec.initial:
                bad(f"created into {rec.dest!r}, not the initial state {spec.initial!r}")
            states[key] = rec.dest
            continue
        current = states.get(key)
        if current is None:
            if kind in IMPLICIT_KINDS:
                current = spec.initial
            elif complete:
                bad(f"{rec.source} --{rec.event}--> {rec.dest} before it was created")
                current = rec.source
            else:
                current = rec.source
        if rec.source != current:
            bad(f"record leaves {rec.source!r} but its history left it in {current!r} "
                f"({rec.source} --{rec.event}--> {rec.dest})")
        if rec.source not in spec.state_names:
            bad(f"unknown state {rec.source!r} in {rec.source} --{rec.event}--> {rec.dest}")
        elif spec.is_final(rec.source):
            bad(f"{rec.source!r} is final, yet --{rec.event}--> {rec.dest}")
        else:
            allowed = spec.successor(rec.source, rec.event)
            if allowed is None:
                bad(f"event {rec.event!r} is not allowed in {rec.source!r} "
                    f"(allowed: {', '.join(spec.triggers(rec.source))})")
            elif allowed != rec.dest:
                bad(f"{rec.source} --{rec.event}--> must lead to {allowed!r}, "
                    f"not {rec.dest!r}")
        states[key] = rec.dest
    counts = Counter((kind, state) for (kind, _), state in states.items())
    return ConformanceReport(count, states, tuple(violations), dict(counts))


def compare_live(
    report: ConformanceReport,
    live: Mapping[tuple[str, int], str],
    specs: Iterable[LifecycleSpec] = ALL,
) -> list[Violation]:
    """Objects whose current state (``live``, from the core) disagrees with their history.

    ``live`` maps every object the core still holds to its state: the pool,
    and every child and job that is not final (the core forgets final ones).
    """
    by_kind = {spec.name: spec for spec in specs}
    found: list[Violation] = []
    for (kind, ident), state in sorted(live.items()):
        replayed = report.states.get((kind, ident))
        if replayed is None:
            spec = by_kind.get(kind)
            if kind in IMPLICIT_KINDS and spec is not None:
                replayed = spec.initial
            else:
                found.append(Violation(kind, ident, f"the core holds it in {state!r} but no "
                                       "record ever mentioned it"))
                continue
        if replayed != state:
            found.append(Violation(kind, ident, f"the core holds it in {state!r} but its "
                                   f"history ends in {replayed!r}"))
    for (kind, ident), replayed in sorted(report.states.items()):
        if (kind, ident) in live or kind in IMPLICIT_KINDS:
            continue
        spec = by_kind.get(kind)
        if spec is not None and replayed in spec.state_names and not spec.is_final(replayed):
            found.append(Violation(kind, ident, f"the core forgot it, yet its history ends in "
                                   f"the non-final state {replayed!r}"))
    return found


def check(
    records: Iterable[Record],
    live: Mapping[tuple[str, int], str] | None = None,
    specs: Iterable[LifecycleSpec] = ALL,
    *,
    complete: bool = True,
) -> ConformanceReport:
    """``replay`` then, if ``live`` is given, ``compare_live``: one report with both."""
    spec_list = tuple(specs)
    report = replay(records, spec_list, complete=complete)
    if live is None:
        return report
    extra = compare_live(report, live, spec_list)
    if not extra:
        return report
    return ConformanceReport(report.records, report.states,
                             (*report.violations, *extra), report.counts)


def live_states(core: Any) -> dict[tuple[str, int], str]:
    """The objects a ``SupervisorCore`` holds, as ``compare_live`` wants them."""
    live: dict[tuple[str, int], str] = {("pool", core.pool.ident): core.pool.state}
    for ident, child in core.children.items():
        live[("child", ident)] = child.state
    for ident, job in core.jobs.items():
        live[("job", ident)] = job.state
    return live


def _time(rec: object, time_of: Any) -> float | None:
    if time_of is not None:
        value = time_of(rec)
        return None if value is None else float(value)
    for name in ("time", "now"):
        value = getattr(rec, name, None)
        if isinstance(value, int | float):
            return float(value)
    return None
