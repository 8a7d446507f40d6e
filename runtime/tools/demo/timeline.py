"""The story of a pool, told from the commands its core issues.

``Timeline`` subscribes to a ``Pool`` and keeps, for every child and every
job, what happened to it and when; it records the faults the scene script
injects and when the supervisor answered them. Views read it (the live table,
the plain lines) and the summary reckons from it. It also turns the notable
moments into one narrated line each (``Line``), which both views show.

Deadlines and the states of the moment come from ``probe`` (the core's own
records), so that the countdowns shown are the supervisor's real ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fsm import events as ev
from runtime.tools.demo import probe

if TYPE_CHECKING:
    from fsm.codec import ChildRecord
    from runtime.pool import Pool

#: Job outcomes as the summary counts them: "done", or "<state> (<ErrorClass>)".
OUTCOME_DONE = "done"
NUM_IDLE_TEXT = "the pool is back at its warm target"


def duration(seconds: float | None) -> str:
    """Milliseconds below a second (detection is fast), else seconds."""
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


@dataclass(frozen=True)
class Line:
    """One narrated moment: seconds since the demo's start, a kind, the text."""

    at: float
    kind: str  # scene, child, job, fault, pool, ok, fail, note
    text: str


@dataclass
class ChildLife:
    ident: int
    born: float
    pid: int | None = None
    state: str = "spawned"
    ready_at: float | None = None
    ended: float | None = None
    reason: str = ""
    #: (seconds, source, event, dest) of every state change
    history: list[tuple[float, str, str, str]] = field(default_factory=list)


@dataclass
class JobLife:
    ident: int
    label: str
    scene: str
    #: What the scene expects: "done", or the error class name it must end with.
    expect: str
    submitted: float
    state: str = "queued"
    children: list[int] = field(default_factory=list)
    started: float | None = None
    settled: float | None = None
    settle_count: int = 0
    outcome_state: str = ""
    error: str = ""
    message: str = ""
    history: list[tuple[float, str, str, str]] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """"done", "failed (ChildDied)", "cancelled (JobTimeout)"... or "" while live."""
        if not self.settle_count:
            return ""
        if self.outcome_state == "done":
            return OUTCOME_DONE
        return f"{self.outcome_state} ({self.error})" if self.error else self.outcome_state

    @property
    def as_expected(self) -> bool:
        if self.settle_count != 1:
            return False
        if self.expect == OUTCOME_DONE:
            return self.outcome_state == "done"
        return self.error == self.expect

    def went_through(self, event: str) -> bool:
        return any(e == event for _, _, e, _ in self.history)


@dataclass
class Fault:
    """A fault the script injected, and the supervisor's answer.

    It counts as detected at the first state change, at or after the
    injection, of ``child`` (or of any child that held ``job``) by one of
    ``child_events``, or of ``job`` by one of ``job_events``: the moment the
    supervisor knew and acted.
    """

    scene: str
    what: str
    injected: float
    child: int | None = None
    job: int | None = None
    child_events: frozenset[str] = frozenset()
    job_events: frozenset[str] = frozenset()
    detected: float | None = None
    #: When the pool was back at its warm target afterwards.
    recovered: float | None = None

    @property
    def detect_s(self) -> float | None:
        return None if self.detected is None else self.detected - self.injected

    @property
    def recover_s(self) -> float | None:
        """From the fault to the pool back at its warm target (after the supervisor acted)."""
        if self.recovered is None or self.detected is None:
            return None
        return self.recovered - self.injected


class Timeline:
    """Everything the demo shows, gathered from one pool's commands."""

    def __init__(self, narrate: Callable[[Line], None] | None = None) -> None:
        self.t0 = time.monotonic()
        self.children: dict[int, ChildLife] = {}
        self.jobs: dict[int, JobLife] = {}
        self.faults: list[Fault] = []
        self.lines: list[Line] = []
        self.pool_state = "starting"
        self.available = False
        self.availability_reason = "not started"
        self.unknown_settles: list[int] = []
        self._narrate = narrate
        self._pool: Pool | None = None
        self._scene = ""

    # --- wiring ---------------------------------------------------------------

    def attach(self, pool: Pool) -> Callable[[], None]:
        self._pool = pool
        return pool.subscribe(self._on_command)

    def now(self) -> float:
        """Seconds since the timeline began."""
        return time.monotonic() - self.t0

    def at(self, monotonic: float) -> float:
        return monotonic - self.t0

    def say(self, kind: str, text: str) -> None:
        line = Line(self.now(), kind, text)
        self.lines.append(line)
        if self._narrate is not None:
            self._narrate(line)

    def begin_scene(self, name: str) -> None:
        self._scene = name

    # --- what the script tells us --------------------------------------------------

    def job_submitted(self, ident: int, label: str, expect: str = OUTCOME_DONE) -> JobLife:
        job = JobLife(ident, label, self._scene, expect, self.now())
        self.jobs[ident] = job
        self.say("job", f"job {ident} submitted: {label}")
        return job

    def fault(self, what: str, *, child: int | None = None, job: int | None = None,
              child_events: tuple[str, ...] = (), job_events: tuple[str, ...] = (),
              injected: float | None = None) -> Fault:
        fault = Fault(self._scene, what, self.now() if injected is None else injected,
                      child, job, frozenset(child_events), frozenset(job_events))
        self.faults.append(fault)
        self.say("fault", f"FAULT: {what}")
        self._detect()
        return fault

    def recovered(self, fault: Fault) -> None:
        fault.recovered = self.now()
        self.say("ok", f"recovered: {NUM_IDLE_TEXT}, {duration(fault.recover_s)} after the "
                 "fault")

    # --- what the supervisor tells us ----------------------------------------------

    def _on_command(self, command: ev.Command) -> None:
        self._record(command)
        if isinstance(command, ev.Transitioned):
            self._detect()

    def _record(self, command: ev.Command) -> None:
        if isinstance(command, ev.Transitioned):
            if command.kind == "child":
                self._child_moved(command)
            elif command.kind == "job":
                self._job_moved(command)
            else:
                self._pool_moved(command)
        elif isinstance(command, ev.SendJob):
            job = self.jobs.get(command.job)
            if job is not None:
                job.children.append(command.child)
                self.say("job", f"job {job.ident} sent to child {command.child}")
        elif isinstance(command, ev.SettleJob):
            self._settled(command)
        elif isinstance(command, ev.Kill):
            life = self.children.get(command.child)
            if life is not None:
                life.reason = command.reason
        elif isinstance(command, ev.Log):
            self._logged(command)
        elif isinstance(command, ev.ReportAvailability):
            self.available = command.available
            self.availability_reason = command.reason
            word = "available" if command.available else "UNAVAILABLE"
            self.say("pool", f"pool {word}: {command.reason}")

    def _child_moved(self, t: ev.Transitioned) -> None:
        if t.event == "pong":
            return  # evidence of life every ping_interval: not part of the story
        at = self.at(t.now)
        life = self.children.get(t.ident)
        if life is None:
            life = self.children[t.ident] = ChildLife(t.ident, at)
        life.history.append((at, t.source, t.event, t.dest))
        life.state = t.dest
        record = _core_child(self._pool, t.ident)
        if record is not None and record.reason:
            life.reason = record.reason
        if t.event == "spawn":
            life.pid = self._pid(t.ident)
            self.say("child", f"child {t.ident} spawned (pid {life.pid})")
        elif t.event == "warmed":
            life.ready_at = at
            self.say("child", f"child {t.ident} ready: warmed up in {duration(at - life.born)}")
        elif t.event == "timeout":
            self.say("child", f"child {t.ident} missed its deadline while {t.source} "
                     f"({life.reason}): SIGKILL")
        elif t.event in ("kill", "init_error"):
            self.say("child", f"child {t.ident} SIGKILLed by the supervisor: {life.reason}")
        elif t.event == "stop":
            self.say("child", f"child {t.ident} asked to stop: {life.reason}")
        elif t.event == "exit":
            life.ended = at
            why = f": {life.reason}" if life.reason else ""
            self.say("child", f"child {t.ident} gone (was {t.source}){why}")

    def _job_moved(self, t: ev.Transitioned) -> None:
        job = self.jobs.get(t.ident)
        if job is None:
            return
        at = self.at(t.now)
        job.history.append((at, t.source, t.event, t.dest))
        job.state = t.dest
        if t.event == "ack" and job.started is None:
            job.started = at
        elif t.event == "requeue":
            child = job.children[-1] if job.children else "?"
            self.say("job", f"job {t.ident} back in the queue: child {child} ended before "
                     "acking it, so it provably never started")
        elif t.event == "timeout" and t.source == "running":
            self.say("job", f"job {t.ident} ran past its timeout: cancelling it")

    def _pool_moved(self, t: ev.Transitioned) -> None:
        self.pool_state = t.dest
        if t.source != t.dest:
            self.say("pool", f"pool {t.source or 'created'} -> {t.dest} ({t.event})")

    def _settled(self, command: ev.SettleJob) -> None:
        job = self.jobs.get(command.job)
        if job is None:
            self.unknown_settles.append(command.job)
            return
        job.settle_count += 1
        job.settled = self.now()
        outcome = command.outcome
        job.outcome_state = outcome.state
        job.error = outcome.error.__name__ if outcome.error is not None else ""
        job.message = outcome.message
        took = duration(job.settled - job.submitted)
        if outcome.state == "done":
            self.say("ok" if job.as_expected else "fail", f"job {job.ident} done in {took}")
        else:
            kind = "ok" if job.as_expected else "fail"
            self.say(kind, f"job {job.ident} {job.outcome}: {outcome.message}")

    def _logged(self, command: ev.Log) -> None:
        if command.child is not None:
            life = self.children.get(command.child)
            if life is not None and "failed: " in command.message:
                # The core's account of an unexpected death: "child N (pid P) failed: why".
                life.reason = command.message.split("failed: ", 1)[1]
            return
        if command.level in ("warning", "error"):
            self.say("pool", command.message)

    def _detect(self) -> None:
        for fault in self.faults:
            if fault.detected is None:
                at = self._answer_time(fault)
                if at is not None:
                    fault.detected = at
                    self.say("ok", f"the supervisor acted {duration(at - fault.injected)} "
                             "after the fault")

    def _answer_time(self, fault: Fault) -> float | None:
        times: list[float] = []
        suspects = [] if fault.child is None else [fault.child]
        job = self.jobs.get(fault.job) if fault.job is not None else None
        if job is not None:
            suspects.extend(job.children)
            times.extend(at for at, _, e, _ in job.history
                         if e in fault.job_events and at >= fault.injected)
        for ident in suspects:
            life = self.children.get(ident)
            if life is not None:
                times.extend(at for at, _, e, _ in life.history
                             if e in fault.child_events and at >= fault.injected)
        return min(times, default=None)

    def _pid(self, child: int) -> int | None:
        if self._pool is None:
            return None
        return self._pool.status().pids.get(child)

    # --- reckoning ---------------------------------------------------------------------

    def outcomes(self) -> dict[str, int]:
        """Jobs by outcome; live (unsettled) jobs count as "lost"."""
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            key = job.outcome or "lost"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def lost_jobs(self) -> list[JobLife]:
        return [j for j in self.jobs.values() if j.settle_count == 0]

    def twice_settled(self) -> list[JobLife]:
        return [j for j in self.jobs.values() if j.settle_count > 1]


def _core_child(pool: Pool | None, ident: int) -> ChildRecord | None:
    return probe.core_child(pool, ident) if pool is not None else None
