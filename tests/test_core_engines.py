"""The compiled engine (the default) and the transitions engine agree.

Production and the model checker drive SupervisorCore(compiled=True), the
default, which moves objects through the spec's edge map instead of the
transitions machine. Both read the
same LifecycleSpec; this test feeds identical random event streams to one
core of each kind and requires identical commands and snapshots at every step,
so the checker cannot verify a different machine from the one that runs.
"""

from __future__ import annotations

import random

import pytest

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.core import SupervisorCore
from fsm.errors import InvalidTransition
from fsm.lifecycles import ALL
from fsm.machine import lifecycle

CFG = PoolConfig(
    num_idle=1, max_children=3, spawn_timeout=1.0, initialize_timeout=2.0, ping_interval=1.0,
    ping_timeout=3.0, close_timeout=1.0, kill_timeout=2.0, queue_timeout=5.0, ack_timeout=1.0,
    job_timeout=3.0, start_timeout=4.0, drain_timeout=6.0, max_restarts=2, restart_window=5.0,
    backoff_initial=1.0, backoff_max=4.0, max_jobs_per_child=2, memory_limit_mb=100.0,
)


def _world_events(core: SupervisorCore, rnd: random.Random, submitted: int) -> list[ev.Event]:
    now = core.now
    opts: list[ev.Event] = []
    for c in core.children.values():
        i = c.ident
        opts += [ev.ChildExited(now, i, 1), ev.Pong(now, i), ev.Spawned(now, i, 100 + i),
                 ev.Hello(now, i), ev.Ready(now, i), ev.InitError(now, i, "boom"),
                 ev.MemorySample(now, i, rnd.choice([10.0, 200.0])), ev.BadMessage(now, i, "x")]
        if c.job is not None:
            j = c.job
            opts += [ev.JobAck(now, i, j), ev.JobDone(now, i, j, 1),
                     ev.JobRaised(now, i, j, "E", "m", "tb"), ev.CancelAck(now, i, j)]
    if submitted < 5:
        opts.append(ev.Submit(now, submitted))
    opts += [ev.Cancel(now, j) for j in core.jobs]
    if rnd.random() < 0.05:
        opts += [ev.Drain(now), ev.Close(now)]
    deadline = core.next_deadline()
    if deadline is not None:
        opts += [ev.DeadlineReached(max(deadline, now))] * 3
    return opts


@pytest.mark.parametrize("seed", range(40))
def test_engines_agree_on_random_walks(seed: int) -> None:
    rnd = random.Random(seed)
    reference = SupervisorCore(CFG, 0.0, compiled=False)
    compiled = SupervisorCore(CFG, 0.0)
    submitted = 0
    steps = 0
    for event in [ev.Start(0.0)]:
        assert reference.handle(event) == compiled.handle(event)
    while steps < 200 and reference.pool_state != "closed":
        opts = _world_events(reference, rnd, submitted)
        event = rnd.choice(opts)
        submitted += isinstance(event, ev.Submit)
        assert reference.handle(event) == compiled.handle(event), event
        assert reference.snapshot() == compiled.snapshot()
        steps += 1
    assert steps > 20  # the walk exercised the cores


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_engines_agree_on_every_state_and_event(spec) -> None:  # type: ignore[no-untyped-def]
    machine = lifecycle(spec)

    class Obj:
        kind = spec.name
        ident = 7

        def __init__(self, state: str) -> None:
            self.state = state

    for state in spec.state_names:
        for event in spec.events:
            a, b = Obj(state), Obj(state)
            try:
                expected: str | None = machine.fire(a, event)
            except InvalidTransition:
                expected = None
            try:
                got: str | None = machine.fire_compiled(b, event)
            except InvalidTransition:
                got = None
            assert got == expected, (state, event)
            assert got == spec.successor(state, event)
