"""A script driver for SupervisorCore, in the style of h11's test_state.py.

A test feeds explicit events and asserts the exact commands that come out and
the full status that results. ``Script`` also checks, after every event, the
invariants that must hold in every reachable state (each job settled at most
once, every live child and job has a deadline, ...), so every scripted test
checks them along its whole walk, not only at its end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.core import SupervisorCore
from fsm.lifecycles import CHILD, JOB

# A config whose every duration differs, so that a deadline in a script names
# the timeout that armed it. Pings are rare (ping_interval 40) so that scripts
# not about pings do not have to answer them.
CFG = PoolConfig(
    num_idle=1,
    max_children=3,
    spawn_timeout=1.0,
    initialize_timeout=2.0,
    ping_interval=40.0,
    ping_timeout=100.0,
    close_timeout=3.0,
    kill_timeout=4.0,
    queue_timeout=20.0,
    ack_timeout=5.0,
    job_timeout=10.0,
    start_timeout=30.0,
    drain_timeout=25.0,
    max_restarts=3,
    restart_window=60.0,
    backoff_initial=1.0,
    backoff_max=8.0,
)


def cfg(**changes: Any) -> PoolConfig:
    """CFG with some settings changed."""
    return dataclasses.replace(CFG, **changes)


# The commands a runtime acts on. Transitioned and Log are records, left out
# of command assertions unless a test is about them.
ACTIONS: tuple[type[ev.Command], ...] = (
    ev.SpawnChild,
    ev.SendInit,
    ev.SendJob,
    ev.SendPing,
    ev.SendCancel,
    ev.SendStop,
    ev.Kill,
    ev.SampleMemory,
    ev.SettleJob,
    ev.ReportAvailability,
)


class Has(str):
    """Equal to any string that contains it: ``Kill(0, Has("spawn_timeout"))``.

    A subclass of str so that it sits in a str field of a frozen command and
    still compares as a fragment (str.__eq__ defers to a subclass's __eq__).
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and str.__contains__(other, str(self))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __repr__(self) -> str:
        return f"Has({str(self)!r})"


ANY = Has("")


def settle(job: int, state: str, error: type[Exception] | None = None,
           message: str = "", value: object = None) -> ev.SettleJob:
    """The SettleJob a test expects; ``message`` is a fragment of the real one."""
    return ev.SettleJob(job, ev.Outcome(state=state, value=value, error=error,  # type: ignore[arg-type]
                                        message=Has(message)))


def view(core: SupervisorCore) -> dict[str, Any]:
    """The whole status of ``core`` in one comparable value (zero counts left out)."""
    s = core.status()
    return {
        "pool": s.pool_state,
        "children": {k: v for k, v in s.children.items() if v},
        "jobs": {k: v for k, v in s.jobs.items() if v},
        "queued": s.queued,
        "available": s.available,
        "budget": s.restart_budget,
        "backoff": s.backoff_level,
    }


def state(pool: str, children: dict[str, int] | None = None, jobs: dict[str, int] | None = None,
          *, queued: int = 0, available: bool, budget: int | None = None,
          backoff: int = 0, config: PoolConfig = CFG) -> dict[str, Any]:
    """The expected ``view``; the restart budget defaults to a full one."""
    return {
        "pool": pool,
        "children": children or {},
        "jobs": jobs or {},
        "queued": queued,
        "available": available,
        "budget": config.max_restarts if budget is None else budget,
        "backoff": backoff,
    }


def check_invariants(core: SupervisorCore, settled: Iterable[int] = (), *,
                     hot_loop: bool = True) -> None:
    """What must hold in every state the core can reach."""
    cfg = core.config
    child_final = {s.name for s in CHILD.states if s.final}
    job_final = {s.name for s in JOB.states if s.final}
    assert len(core.children) <= cfg.max_children, core.children
    for cid, child in core.children.items():
        assert cid == child.ident
        # A final child is forgotten; every live one has a way out.
        assert child.state not in child_final, child
        assert child.deadline is not None, child
        if child.job is not None:
            job = core.jobs[child.job]
            assert job.child == cid, (child, job)
    for jid, job in core.jobs.items():
        assert jid == job.ident
        assert job.state not in job_final, job
        assert job.deadline is not None, job
        if job.state == "queued":
            assert job.child is None, job
        else:
            assert job.child is not None, job
        if job.state in ("dispatched", "running"):
            holder = core.children[job.child]  # type: ignore[index]
            assert holder.state in ("busy", "stopping", "failed"), (job, holder)
            assert holder.job == jid, (job, holder)
    assert sorted(core.queue) == sorted(j for j, r in core.jobs.items() if r.state == "queued")
    assert len(set(core.queue)) == len(core.queue)
    for jid in settled:
        assert jid not in core.jobs, f"job {jid} was settled but is still live"
    if core.pool_state == "closed":
        assert not core.children and not core.jobs
    if hot_loop:
        # No spawn -> fail -> spawn cycle without time passing: at one instant at most
        # the failures that trip restart intensity, plus the children already in flight.
        at_once = core.failures.count(core.now)
        assert at_once <= cfg.max_restarts + 1 + cfg.max_children, (
            f"{at_once} child failures at t={core.now}: a hot respawn loop")
    if core.pool_state not in ("closed",):
        assert core.next_deadline() is not None
    # The deadline heap answers what a scan of every record would.
    armed = [o.deadline for o in (core.pool, *core.children.values(), *core.jobs.values())
             if o.deadline is not None]
    if core.heartbeat_at is not None:
        armed.append(core.heartbeat_at)
    assert core.next_deadline() == min(armed, default=None), (core.next_deadline(), armed)


class Script:
    """Feed events to one core, keep everything it said, check invariants at each step."""

    def __init__(self, config: PoolConfig = CFG, *, now: float = 0.0, start: bool = True,
                 hot_loop: bool = True) -> None:
        self.hot_loop = hot_loop
        self.core = SupervisorCore(config, now=now)
        self.config = config
        self.commands: list[ev.Command] = []
        self.outcomes: dict[int, ev.Outcome] = {}
        self.reported: bool | None = None
        self.started: list[ev.Command] = []
        if start:
            self.started = self(ev.Start(now))

    @property
    def now(self) -> float:
        return self.core.now

    def __call__(self, event: ev.Event,
                 keep: tuple[type[ev.Command], ...] = ACTIONS) -> list[ev.Command]:
        """Feed one event; return the commands of the types in ``keep``."""
        out = self.core.handle(event)
        self.commands.extend(out)
        for c in out:
            if isinstance(c, ev.SettleJob):
                assert c.job not in self.outcomes, f"job {c.job} settled twice: {c.outcome}"
                self.outcomes[c.job] = c.outcome
            elif isinstance(c, ev.ReportAvailability):
                # Reported only when it changes, and then it is the truth.
                assert c.available != self.reported, f"availability reported twice: {c}"
                self.reported = c.available
        if self.reported is not None:
            assert self.reported == self.core.available, "availability changed unreported"
        check_invariants(self.core, self.outcomes, hot_loop=self.hot_loop)
        return [c for c in out if isinstance(c, keep)]

    def feed(self, *events: ev.Event) -> list[ev.Command]:
        """Feed several events; return all their action commands."""
        out: list[ev.Command] = []
        for e in events:
            out += self(e)
        return out

    def at_deadline(self) -> list[ev.Command]:
        """Let time pass until the next deadline and wake the core there."""
        deadline = self.core.next_deadline()
        assert deadline is not None
        return self(ev.DeadlineReached(max(deadline, self.now)))

    def until(self, t: float) -> list[ev.Command]:
        """Let time pass to ``t``, firing every deadline on the way, as a runtime does."""
        out: list[ev.Command] = []
        while (d := self.core.next_deadline()) is not None and d <= t:
            out += self(ev.DeadlineReached(max(d, self.now)))
        out += self(ev.DeadlineReached(t))
        return out

    def warm(self, child: int, now: float | None = None) -> list[ev.Command]:
        """``child`` starts, says hello and becomes ready (pid 100 + child)."""
        t = self.now if now is None else now
        return self.feed(ev.Spawned(t, child, 100 + child), ev.Hello(t, child), ev.Ready(t, child))

    def of(self, kind: type[ev.Command]) -> list[ev.Command]:
        """Every command of ``kind`` emitted so far."""
        return [c for c in self.commands if isinstance(c, kind)]

    def child(self, ident: int) -> str:
        """The state of ``child``, or 'gone' once the core forgot it."""
        c = self.core.children.get(ident)
        return "gone" if c is None else c.state

    def job(self, ident: int) -> str:
        """The state of a live job, or its settled outcome's state."""
        j = self.core.jobs.get(ident)
        if j is not None:
            return j.state
        return self.outcomes[ident].state if ident in self.outcomes else "unknown"


def only(cmds: Iterable[ev.Command], *kinds: type[ev.Command]) -> list[ev.Command]:
    return [c for c in cmds if isinstance(c, kinds)]
