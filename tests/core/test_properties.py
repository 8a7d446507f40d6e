"""Properties over random event sequences: whatever the world does, the core keeps its promises.

A random driver plays the world: at each step it picks one thing that could
happen now (a message from a live child, in or out of protocol; an exit; a
deadline at next_deadline(); a submit, cancel, drain or close). ``Script``
checks after every step that each job is settled at most once, settled jobs
are forgotten, every live child and job has a deadline, the pool never holds
more than max_children, a dispatched or running job's child is busy, stopping
or failed, and availability is reported exactly when it changes. Any
exception from handle() (InvalidTransition included) fails the walk. At the
end the pool is closed and time runs out: every submitted job must then have
exactly one outcome, and the pool must be closed within shutdown_timeout.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.core import SupervisorCore

from .script import Script, cfg

CONFIGS = [
    cfg(num_idle=1, max_children=2, max_restarts=2, restart_window=5.0, backoff_initial=1.0,
        backoff_max=4.0, ping_interval=1.0, ping_timeout=3.0, queue_timeout=6.0, job_timeout=4.0,
        drain_timeout=8.0, start_timeout=5.0),
    cfg(num_idle=0, max_children=1, max_restarts=0, max_jobs_per_child=1, memory_limit_mb=100.0),
    cfg(num_idle=2, max_children=3, max_jobs_per_child=2, memory_warn_mb=50.0,
        memory_limit_mb=100.0, ack_timeout=0.5),
    # Every deadline short: timeouts of every state fire within a few steps.
    cfg(num_idle=1, max_children=2, spawn_timeout=0.5, initialize_timeout=0.5, ping_interval=0.5,
        ping_timeout=1.0, close_timeout=0.5, kill_timeout=0.5, queue_timeout=2.0,
        ack_timeout=0.5, job_timeout=1.0, start_timeout=1.0, drain_timeout=1.5,
        max_restarts=4, restart_window=2.0, backoff_initial=0.5, backoff_max=1.0),
]


def protocol(core: SupervisorCore, now: float) -> list[ev.Event]:
    """What the children could send now if they follow the protocol."""
    out: list[ev.Event] = []
    for c, rec in core.children.items():
        job = core.jobs.get(rec.job) if rec.job is not None else None
        if rec.state == "spawned":
            out += [ev.Hello(now, c)] if rec.pid is not None else [ev.Spawned(now, c, 100 + c)]
        elif rec.state == "warming":
            out += [ev.Ready(now, c)] * 3 + [ev.InitError(now, c, "boom")]
        elif rec.state in ("ready", "busy"):
            out.append(ev.Pong(now, c))
        if job is None:
            continue
        if job.state == "dispatched":
            out += [ev.JobAck(now, c, job.ident)] * 3
        elif job.state == "running":
            out += [ev.JobDone(now, c, job.ident, job.ident)] * 2 + [
                ev.JobRaised(now, c, job.ident, "E", "m", "tb")]
        elif job.state == "cancelling":
            out += [ev.CancelAck(now, c, job.ident), ev.JobDone(now, c, job.ident, None),
                    ev.JobRaised(now, c, job.ident, "E", "m", "tb")]
        if rec.state in ("stopping", "failed"):
            out.append(ev.ChildExited(now, c, 0 if rec.state == "stopping" else -9))
    return out


def breaches(core: SupervisorCore, child: int, now: float) -> list[ev.Event]:
    """Exits, memory samples and messages that break the protocol, from ``child``."""
    rec = core.children[child]
    job = rec.job if rec.job is not None else next(iter(core.jobs), 0)
    exits: list[ev.Event] = [ev.ChildExited(now, child, 0), ev.ChildExited(now, child, None),
                             ev.ChildExited(now, child, -9)]
    late: list[ev.Event] = [ev.JobDone(now, child, job, None), ev.BadMessage(now, child, "x")]
    if rec.state == "failed":
        return exits + late
    return exits * 2 + late + [
        ev.MemorySample(now, child, 150.0), ev.MemorySample(now, child, 60.0),
        ev.MemorySample(now, child, 10.0), ev.Hello(now, child), ev.Ready(now, child),
        ev.InitError(now, child, "late"), ev.JobAck(now, child, job),
        ev.CancelAck(now, child, job), ev.JobRaised(now, child, job)]


# The walk also checks that no spawn -> fail -> spawn cycle runs without time
# passing (it found the draining hot loop that test_restart_intensity pins).
HOT_LOOP_CHECKED = True

KINDS = ["protocol"] * 7 + ["breach", "breach", "deadline", "deadline", "deadline", "user",
                            "user"]


@st.composite
def world_step(draw: st.DrawFn, core: SupervisorCore, next_job: int) -> ev.Event:
    deadline = core.next_deadline()
    now = core.now
    kind = draw(st.sampled_from(KINDS))
    if kind == "deadline" and deadline is not None:
        return ev.DeadlineReached(max(deadline, now))
    # Messages and calls arrive a little later, never past the next deadline.
    dt = draw(st.sampled_from([0.0, 0.25, 1.0]))
    t = now + dt if deadline is None else min(now + dt, max(deadline, now))
    if kind == "protocol" and (options := protocol(core, t)):
        return draw(st.sampled_from(options))
    if kind == "breach" and core.children:
        child = draw(st.sampled_from(sorted(core.children)))
        return draw(st.sampled_from(breaches(core, child, t)))
    user: list[ev.Event] = [ev.Submit(t, next_job)] * 6 + [ev.Submit(t, next_job, timeout=0.5)]
    user += [ev.Cancel(t, j) for j in core.jobs] * 2 + [ev.Cancel(t, max(next_job - 1, 0))]
    if draw(st.integers(0, 9)) == 0:  # rarely: most walks should see a serving pool
        return draw(st.sampled_from([ev.Drain(t), ev.Close(t)]))
    return draw(st.sampled_from(user))


def cooperate(core: SupervisorCore, now: float) -> list[ev.Event]:
    """A healthy world's prompt answer to everything the core is waiting for."""
    out: list[ev.Event] = []
    for c, rec in core.children.items():
        job = core.jobs.get(rec.job) if rec.job is not None else None
        if rec.state == "spawned":
            out += [ev.Spawned(now, c, 100 + c)] if rec.pid is None else []
            out += [ev.Hello(now, c)]
        elif rec.state == "warming":
            out.append(ev.Ready(now, c))
        elif rec.state in ("stopping", "failed"):
            if job is not None and job.state == "cancelling":
                out.append(ev.CancelAck(now, c, job.ident))
            out.append(ev.ChildExited(now, c, 0))
        elif job is not None and job.state == "dispatched":
            out.append(ev.JobAck(now, c, job.ident))
        elif job is not None and job.state == "running":
            out.append(ev.JobDone(now, c, job.ident, job.ident))
    return out


def quiescent(core: SupervisorCore) -> bool:
    """Every job final and the pool closed or back at its warm target, nothing starting."""
    if core.jobs:
        return False
    if core.pool_state == "closed":
        return True
    states = [c.state for c in core.children.values()]
    return (core.pool_state == "running" and set(states) <= {"ready"}
            and len(states) >= core.config.num_idle)


def heal(s: Script) -> None:
    """From wherever the walk left the pool, a healthy world brings it to quiescence."""
    limit = s.now + 200.0
    while not quiescent(s.core):
        assert s.now <= limit, f"no quiescence by t={limit}: {s.core.status()}"
        answers = cooperate(s.core, s.now)
        if answers:
            # One at a time: each answer may change what the core waits for next.
            s(answers[0])
            continue
        s.at_deadline()
        # Every ping is answered.
        for c, rec in list(s.core.children.items()):
            if rec.state in ("ready", "busy"):
                s(ev.Pong(s.now, c))


def walk(data: st.DataObject, config: PoolConfig, steps: int, *,
         hot_loop: bool = HOT_LOOP_CHECKED) -> Script:
    s = Script(config, hot_loop=hot_loop)
    next_job = 0
    for _ in range(steps):
        event = data.draw(world_step(s.core, next_job))
        if isinstance(event, ev.Submit):
            next_job += 1
        s(event)
        # A snapshot determines the future: the restored core is the same state.
        snap = s.core.snapshot()
        assert SupervisorCore.restore(config, snap, now=s.now).snapshot() == snap
    if data.draw(st.booleans()):
        # A healthy world from now on: the pool must get back to quiescence.
        heal(s)
    else:
        # Or close, and let time run out without any help from the world.
        s(ev.Close(s.now))
        closed_by = s.now + config.shutdown_timeout
        while s.core.pool_state != "closed":
            assert s.at_deadline() is not None
            assert s.now <= closed_by
        assert not s.core.children
    assert set(s.outcomes) == set(range(next_job))
    assert not s.core.jobs
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), config=st.sampled_from(CONFIGS))
def test_random_walks_keep_every_promise(data: st.DataObject, config: PoolConfig) -> None:
    walk(data, config, steps=40)


@pytest.mark.slow
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), config=st.sampled_from(CONFIGS))
def test_long_random_walks_keep_every_promise(data: st.DataObject, config: PoolConfig) -> None:
    walk(data, config, steps=150)
