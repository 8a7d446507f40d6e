"""The bug zoo (../shared/bug-zoo.md) replayed as event scripts against the core.

Each scenario is the world that wedged a real supervisor; each script ends
settled: every submitted job has exactly one outcome and the pool is back at
its warm target, backing off with an armed deadline, or closed.
"""

from __future__ import annotations

import itertools

from fsm import events as ev
from fsm.errors import JobCancelled, NoCapacity

from .script import ANY, Has, Script, cfg, settle, state, view


def assert_settled(s: Script, submitted: set[int]) -> None:
    core = s.core
    assert not core.jobs, core.jobs
    assert set(s.outcomes) == submitted
    if core.pool_state == "closed":
        assert not core.children
        return
    if core.pool_state == "backing_off":
        assert core.pool.deadline is not None
        return
    assert core.pool_state == "running"
    ready = sum(1 for c in core.children.values() if c.state == "ready")
    assert ready >= core.config.num_idle


# --- Z1: a warming child that never answers must not hold the job ------------------


def test_z1_a_hung_warming_child_does_not_hold_the_job() -> None:
    s = Script(cfg(num_idle=1, max_children=3))
    assert s.feed(ev.Spawned(0.0, 0, 100), ev.Hello(0.1, 0)) == [ev.SendInit(0)]
    # Child 0's initializer hangs. A job arrives: a second child starts at once.
    assert s(ev.Submit(0.5, 1)) == [ev.SpawnChild(1)]
    # Not available yet: no child has become ready, so spawning is not proven.
    assert view(s.core) == state("starting", {"spawned": 1, "warming": 1}, {"queued": 1},
                                 queued=1, available=False)
    # Child 1 proves spawning and takes the job; child 0 still warms: available.
    assert s.warm(1, 0.8) == [
        ev.SendInit(1),
        ev.SendJob(1, 1),
        ev.ReportAvailability(True, "a child is warming or can be spawned"),
    ]
    assert s(ev.JobAck(0.9, 1, 1)) == []
    # The job runs long before child 0's initialize_timeout (2.1).
    dispatched_at = [c.now for c in s.of(ev.Transitioned) if c.kind == "job"
                     and c.dest == "dispatched"]
    assert dispatched_at == [0.8]
    # At initialize_timeout the hung child is killed and replaced (child 1 is busy).
    assert s.at_deadline() == [
        ev.Kill(0, "did not finish its initializer within initialize_timeout=2s"),
        ev.SpawnChild(2),
        ev.ReportAvailability(False, Has("initialize_timeout")),
    ]
    assert s.now == 2.1
    assert s(ev.ChildExited(2.2, 0, -9)) == []
    assert s(ev.JobDone(3.0, 1, 1, "ok")) == [
        settle(1, "done", value="ok"),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]
    s.warm(2, 3.1)
    assert view(s.core) == state("running", {"ready": 2}, available=True, budget=2)
    assert_settled(s, {1})


def test_z1_a_warming_child_that_dies_silently_is_replaced_and_the_pool_refills() -> None:
    # The #1748 shape: one idle slot, the child dies while warming without a message.
    s = Script(cfg(num_idle=1, max_children=1))
    s.feed(ev.Spawned(0.0, 0, 100), ev.Hello(0.1, 0))
    # Unavailable from the start (no child has become ready yet): nothing to report.
    assert s(ev.Submit(0.2, 1)) == []
    assert view(s.core) == state("starting", {"warming": 1}, {"queued": 1}, queued=1,
                                 available=False, config=cfg(max_children=1))
    assert s.core.status().reason == "no ready child, and no child has become ready yet"
    # Killed by the OOM killer while warming: only the exit is seen. The slot is
    # released at once and the pool refills.
    assert s(ev.ChildExited(0.3, 0, -9)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("starting", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, budget=2, config=cfg(max_children=1))
    assert s.core.status().reason == (
        "no ready child, and the last child failed: child 0: exited with code -9 while warming")
    # Child 1 proves spawning but takes the job at once, and the only slot is held:
    # still unavailable, for that reason now.
    assert s.warm(1, 0.4) == [ev.SendInit(1), ev.SendJob(1, 1)]
    assert s.core.status().reason == "all 1 children are busy or starting and 0 jobs are queued"
    s.feed(ev.JobAck(0.5, 1, 1), ev.JobDone(0.6, 1, 1))
    assert_settled(s, {1})


# --- Z2: a kill that does not kill -------------------------------------------------


def test_z2_a_child_that_ignores_the_stop_is_killed_then_abandoned() -> None:
    config = cfg(num_idle=2, max_children=2)
    s = Script(config)
    s.warm(0, 0.1)
    s.warm(1, 0.1)
    assert s(ev.Close(1.0)) == [
        ev.SendStop(0), ev.SendStop(1), ev.ReportAvailability(False, "the pool is closing")]
    s(ev.ChildExited(1.1, 1, 0))
    # Child 0 ignores the stop (a no-op SIGTERM handler, say).
    assert s.at_deadline() == [
        ev.Kill(0, "pool closing; then did not stop within close_timeout=3s"),
    ]
    assert s.now == 4.0
    assert view(s.core) == state("closing", {"failed": 1}, available=False, config=config)
    # And the SIGKILL is never reaped: the kill has its own deadline.
    assert s.at_deadline() == []
    assert s.now == 8.0
    assert view(s.core) == state("closed", available=False, config=config)
    assert s.core.children == {}
    assert s.core.next_deadline() is None
    assert_settled(s, set())


def test_z2_a_recycled_child_that_ignores_the_stop_is_killed_and_tracked() -> None:
    config = cfg(max_children=2, max_jobs_per_child=1)
    s = Script(config)
    s.warm(0, 0.0)
    s.feed(ev.Submit(0.1, 1), ev.JobAck(0.1, 0, 1))
    s.warm(1, 0.1)
    assert s(ev.JobDone(0.2, 0, 1)) == [settle(1, "done"), ev.SendStop(0)]
    # Every live process is in the books with a deadline, the stopping one too.
    assert {c: (r.state, r.deadline) for c, r in s.core.children.items()} == {
        0: ("stopping", 3.2), 1: ("ready", 100.1)}
    assert s.at_deadline() == [ev.Kill(0, Has("did not stop within close_timeout=3s"))]
    s(ev.ChildExited(3.3, 0, -9))
    assert_settled(s, {1})


# --- Z3: a dead idle child is handed a job -----------------------------------------


def test_z3_a_job_submitted_just_after_an_idle_child_died_goes_to_another_child() -> None:
    config = cfg(num_idle=2, max_children=3)
    s = Script(config)
    s.warm(0, 0.1)
    s.warm(1, 0.1)
    assert s(ev.ChildExited(1.0, 0, -9)) == [ev.SpawnChild(2)]
    assert s(ev.Submit(1.0, 1)) == [
        ev.SendJob(1, 1),
        ev.SpawnChild(3),
        ev.ReportAvailability(False, Has("child 0: exited with code -9 while ready")),
    ]
    s.feed(ev.JobAck(1.1, 1, 1))
    assert s(ev.JobDone(1.2, 1, 1, "value")) == [
        settle(1, "done", value="value"),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]
    s.warm(2, 1.3)
    assert_settled(s, {1})


def test_z3_a_job_sent_to_a_child_that_was_already_dead_is_requeued_not_failed() -> None:
    config = cfg(num_idle=2, max_children=3)
    s = Script(config)
    s.warm(0, 0.1)
    s.warm(1, 0.1)
    # Child 0 is dead, but its exit is not seen yet: the job is written to it.
    assert s(ev.Submit(1.0, 1)) == [ev.SendJob(0, 1), ev.SpawnChild(2)]
    # Then the reap: no ack came first, so the job provably never started.
    assert s(ev.ChildExited(1.01, 0, -9)) == [
        ev.SendJob(1, 1),
        ev.SpawnChild(3),
        ev.ReportAvailability(False, Has("child 0: exited with code -9 while busy")),
    ]
    assert (s.core.jobs[1].state, s.core.jobs[1].child) == ("dispatched", 1)
    s(ev.JobAck(1.1, 1, 1))
    assert s(ev.JobDone(1.2, 1, 1, "value")) == [
        settle(1, "done", value="value"),
        ev.ReportAvailability(True, ANY),
    ]
    assert s.outcomes == {1: settle(1, "done", value="value").outcome}
    s.warm(2, 1.3)
    assert_settled(s, {1})


# --- Z4: an unbounded wait for a warm process ---------------------------------------


def test_z4_when_every_spawn_fails_queued_jobs_get_no_capacity_at_queue_timeout() -> None:
    config = cfg(num_idle=1, max_children=2)
    s = Script(config)
    s.feed(ev.Submit(0.0, 1), ev.Submit(3.0, 2))
    # The world: every SpawnChild is answered "could not be started".
    while s.core.jobs:
        for c in [c for c, r in s.core.children.items() if r.state == "spawned"]:
            s(ev.ChildExited(s.now, c, None))
        if s.core.jobs:
            s.at_deadline()
    assert s.outcomes == {
        1: settle(1, "failed", NoCapacity, "job 1 waited queue_timeout=20s").outcome,
        2: settle(2, "failed", NoCapacity, "job 2 waited queue_timeout=20s").outcome,
    }
    # Never later than the deadline each job was promised.
    failed_at = {c.ident: c.now for c in s.of(ev.Transitioned) if c.kind == "job"
                 and c.dest == "failed"}
    assert failed_at == {1: 20.0, 2: 23.0}
    # Settled: no job waits; the pool backs off with its timer armed, unavailable.
    assert not s.core.jobs
    assert s.core.pool_state == "backing_off"
    assert s.core.pool.deadline is not None
    assert not s.core.available


# --- Z5: a hot respawn loop ---------------------------------------------------------


def test_z5_an_initializer_that_always_fails_backs_off_instead_of_spinning() -> None:
    config = cfg(num_idle=1, max_children=2, max_restarts=3, restart_window=10.0,
                 backoff_initial=0.5, backoff_max=4.0)
    s = Script(config)
    s(ev.Submit(0.0, 1))

    def world() -> None:
        # Every child starts, says hello, fails its initializer and is reaped, at
        # once (so any spin would happen without time passing).
        while spawned := [c for c, r in s.core.children.items() if r.state == "spawned"]:
            for c in spawned:
                t = s.now
                s.feed(ev.Spawned(t, c, 100 + c), ev.Hello(t, c),
                       ev.InitError(t, c, "ImportError: no module named torch"),
                       ev.ChildExited(t, c, 1))

    while s.now < 60.0:
        world()
        s.at_deadline()
    spawn_times = [c.now for c in s.of(ev.Transitioned)
                   if c.kind == "child" and c.event == "spawn"]
    bursts: dict[float, int] = {}
    for t in spawn_times:
        bursts[t] = bursts.get(t, 0) + 1
    # At one instant: at most the failures that trip the limit plus the spawns
    # that were already in flight (one per slot).
    assert max(bursts.values()) <= config.max_restarts + config.max_children
    # Between bursts time passes, growing to backoff_max and staying there.
    instants = sorted(bursts)
    gaps = [b - a for a, b in itertools.pairwise(instants)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert all(g == 4.0 for g in gaps[4:])
    assert len(spawn_times) <= 5 * len(instants)
    # The caller is told: the job fails with NoCapacity naming the init error.
    assert s.outcomes[1].error is NoCapacity
    assert "ImportError: no module named torch" in s.outcomes[1].message
    assert not s.core.available
    assert "initializer failed" in s.core.status().reason


# --- Z6: STOPPING forever -----------------------------------------------------------


def test_z6_a_sigkill_never_reaped_is_abandoned_and_its_slot_reused() -> None:
    config = cfg(num_idle=1, max_children=1)
    s = Script(config)
    s.warm(0, 0.1)
    s.feed(ev.Submit(0.2, 1), ev.JobAck(0.2, 0, 1))
    s(ev.Cancel(0.3, 1))
    # The child ignores the cancel and the stop, then SIGKILL does not reap it
    # (uninterruptible sleep).
    assert s.at_deadline() == [
        ev.Kill(0, "cancelling job 1; then did not stop within close_timeout=3s"),
        settle(1, "cancelled", JobCancelled, "job 1 was cancelled; its child was killed"),
    ]
    assert view(s.core) == state("running", {"failed": 1}, available=False, config=config)
    assert s(ev.Submit(4.0, 2)) == []  # waits: the only slot is held by the dying child
    assert s.at_deadline() == [ev.SpawnChild(1)]
    assert s.now == 3.3 + 4.0
    assert s.of(ev.Log)[-1].level == "error"
    assert "abandoned, its slot released" in s.of(ev.Log)[-1].message
    assert s.warm(1, 7.5) == [ev.SendInit(1), ev.SendJob(1, 2)]
    s.feed(ev.JobAck(7.6, 1, 2), ev.JobDone(7.7, 1, 2))
    # The abandoned process is reaped at last: it changes nothing.
    assert s(ev.ChildExited(9.0, 0, -9)) == []
    assert_settled(s, {1, 2})


# --- Z7: a boot hang that is never killed ---------------------------------------------


def test_z7_a_child_that_never_says_hello_is_killed_at_spawn_timeout_from_spawn() -> None:
    config = cfg(num_idle=1, max_children=1)
    s = Script(config)
    # The pid is reported late: the deadline still counts from SpawnChild (t=0).
    assert s(ev.Spawned(0.9, 0, 100)) == []
    assert s.core.children[0].deadline == 1.0
    assert s.core.next_deadline() == 1.0
    # Unavailable from the start: nothing to report, but the reason names the kill.
    assert s.at_deadline() == [ev.Kill(0, "sent no hello within spawn_timeout=1s")]
    assert s.now == 1.0
    assert s.core.status().reason == (
        "no ready child, and the last child failed: child 0: sent no hello within spawn_timeout=1s")
    assert s(ev.ChildExited(1.1, 0, -9)) == [ev.SpawnChild(1)]
    assert s.warm(1, 1.2) == [ev.SendInit(1), ev.ReportAvailability(True, "a ready child is idle")]
    assert_settled(s, set())
