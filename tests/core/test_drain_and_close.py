"""Drain and close: every job reaches one outcome, every child ends, in bounded time."""

from __future__ import annotations

from fsm import events as ev
from fsm.errors import JobCancelled, JobTimeout, PoolClosed

from .script import Script, cfg, settle, state, view

C3 = cfg(max_children=3)


def busy_pool() -> Script:
    """Child 0 runs job 1, child 1 has job 2 dispatched, child 2 is spawned (the spare)."""
    s = Script(C3)
    s.warm(0, 0.1)
    s.feed(ev.Submit(0.2, 1), ev.JobAck(0.2, 0, 1))
    s.warm(1, 0.3)
    assert s(ev.Submit(0.4, 2)) == [ev.SendJob(1, 2), ev.SpawnChild(2)]
    assert view(s.core) == state("running", {"spawned": 1, "busy": 2},
                                 {"dispatched": 1, "running": 1}, available=True, config=C3)
    return s


def test_drain_refuses_new_jobs_lets_running_ones_finish_then_closes() -> None:
    s = busy_pool()
    assert s(ev.Drain(1.0)) == [ev.ReportAvailability(False, "the pool is draining")]
    assert s.core.pool.deadline == 1.0 + 25.0
    assert s(ev.Submit(1.1, 3)) == [
        settle(3, "failed", PoolClosed,
               "job 3 refused: the pool is draining; submit it to another worker"),
    ]
    assert s(ev.Drain(1.2)) == []  # idempotent
    assert s(ev.JobAck(1.2, 1, 2)) == []
    assert s(ev.JobDone(2.0, 0, 1, "a")) == [settle(1, "done", value="a")]
    # A child freed while draining stays ready (no new job can come) until the end.
    assert view(s.core) == state("draining", {"spawned": 1, "ready": 1, "busy": 1},
                                 {"running": 1}, available=False, config=C3)
    assert s(ev.JobDone(2.5, 1, 2, "b")) == [
        settle(2, "done", value="b"),
        ev.SendStop(0),
        ev.SendStop(1),
        ev.Kill(2, "pool closing"),
    ]
    assert view(s.core) == state("closing", {"stopping": 2, "failed": 1}, available=False,
                                 config=C3)
    assert s.core.pool.deadline == 2.5 + 3.0 + 4.0  # shutdown_timeout
    assert s(ev.ChildExited(2.6, 0, 0)) == []
    assert s(ev.ChildExited(2.7, 1, 0)) == []
    assert s(ev.ChildExited(2.8, 2, -9), keep=(ev.Transitioned,))[-1] == ev.Transitioned(
        "pool", 0, "closing", "closed", "closed", 2.8)
    assert view(s.core) == state("closed", available=False, config=C3)
    assert s.core.next_deadline() is None
    # A closed pool refuses jobs too.
    assert s(ev.Submit(3.0, 4)) == [
        settle(4, "failed", PoolClosed, "job 4 refused: the pool is closed"),
    ]
    assert sorted(s.outcomes) == [1, 2, 3, 4]


def test_drain_still_runs_queued_jobs_and_spawns_for_them() -> None:
    s = Script(cfg(max_children=1))
    s(ev.Submit(0.0, 1))
    s(ev.ChildExited(0.1, 0, None))  # the first spawn fails
    assert s(ev.Drain(0.2)) == []  # already unavailable
    assert view(s.core) == state("draining", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, budget=2)
    assert s.warm(1, 0.3) == [ev.SendInit(1), ev.SendJob(1, 1)]
    s(ev.JobAck(0.4, 1, 1))
    assert s(ev.JobDone(0.5, 1, 1)) == [settle(1, "done"), ev.SendStop(1)]
    assert s(ev.ChildExited(0.6, 1, 0)) == []
    assert view(s.core) == state("closed", available=False, budget=2)


def test_drain_timeout_closes_and_settles_unfinished_jobs_with_pool_closed() -> None:
    s = Script(C3)
    s.warm(0, 0.1)
    s.feed(ev.Submit(0.2, 1, timeout=100.0), ev.JobAck(0.2, 0, 1))
    s.warm(1, 0.3)
    assert s(ev.Drain(1.0)) == [ev.ReportAvailability(False, "the pool is draining")]
    assert view(s.core) == state("draining", {"ready": 1, "busy": 1}, {"running": 1},
                                 available=False, config=C3)
    # The busy child is told to cancel the job just settled (it then exits); the
    # ready one to stop.
    assert s.at_deadline() == [
        settle(1, "failed", PoolClosed, "job 1 did not finish: the pool closed"),
        ev.SendCancel(0, 1),
        ev.SendStop(1),
    ]
    assert s.now == 1.0 + 25.0
    assert view(s.core) == state("closing", {"stopping": 2}, available=False, config=C3)
    assert [c.message for c in s.of(ev.Log)][-1] == (
        "drain_timeout=25s passed with 1 jobs unfinished; closing")
    # The result (or cancel ack) that arrives after the drain ended is stale.
    assert s(ev.JobDone(26.5, 0, 1, "late")) == []
    assert s(ev.CancelAck(26.5, 0, 1)) == []
    assert view(s.core) == state("closing", {"stopping": 2}, available=False, config=C3)
    s.feed(ev.ChildExited(26.6, 0, 0), ev.ChildExited(26.7, 1, 0))
    assert view(s.core) == state("closed", available=False, config=C3)
    assert list(s.outcomes) == [1]


def test_close_settles_every_job_once_and_stops_every_child() -> None:
    s = busy_pool()
    s.warm(2, 0.5)
    s(ev.JobAck(0.5, 1, 2))
    s(ev.Cancel(0.6, 2))  # child 1 stopping, job 2 cancelling
    s.feed(ev.Submit(0.7, 3), ev.JobAck(0.7, 2, 3), ev.Submit(0.8, 4))
    assert view(s.core) == state("running", {"busy": 2, "stopping": 1},
                                 {"queued": 1, "running": 2, "cancelling": 1}, queued=1,
                                 available=False, config=C3)
    assert s(ev.Close(1.0)) == [
        settle(1, "failed", PoolClosed, "job 1 did not finish: the pool closed"),
        settle(2, "cancelled", JobCancelled, "job 2 was cancelled; the pool closed"),
        settle(3, "failed", PoolClosed, "job 3 did not finish: the pool closed"),
        settle(4, "failed", PoolClosed, "job 4 did not finish: the pool closed"),
        # Busy children are told to cancel their (now settled) jobs; child 1 is
        # already stopping, cancelling job 2.
        ev.SendCancel(0, 1),
        ev.SendCancel(2, 3),
    ]
    assert view(s.core) == state("closing", {"stopping": 3}, available=False, config=C3)
    # Late reports of settled jobs are stale: no second outcome.
    assert s(ev.JobDone(1.1, 0, 1, "late")) == []
    assert s(ev.CancelAck(1.1, 0, 1)) == []
    assert s(ev.CancelAck(1.1, 1, 2)) == []
    assert s(ev.Close(1.2)) == []
    assert s(ev.Drain(1.2)) == []
    # Child 0 exits; child 1 (stopping since 0.6) and child 2 ignore the cancel.
    s(ev.ChildExited(1.3, 0, 0))
    assert s.at_deadline() == [
        ev.Kill(1, "cancelling job 2; then did not stop within close_timeout=3s"),
    ]
    assert s.now == 3.6
    assert s.at_deadline() == [
        ev.Kill(2, "pool closing; then did not stop within close_timeout=3s"),
    ]
    assert s.now == 4.0
    assert s(ev.ChildExited(4.5, 1, -9)) == []
    assert view(s.core) == state("closing", {"failed": 1}, available=False, config=C3)
    # Child 2 is never reaped: abandoned at 8.0, and the pool closes at that same
    # instant, close_timeout + kill_timeout after Close.
    assert s.at_deadline() == []
    assert s.now == 1.0 + 3.0 + 4.0
    assert view(s.core) == state("closed", available=False, config=C3)
    assert [c.message for c in s.of(ev.Log) if c.level == "error"] == [
        "child 2 (pid 102) was not reaped 4s after SIGKILL; abandoned, its slot released "
        "(pool closing; then did not stop within close_timeout=3s)",
    ]
    assert sorted(s.outcomes) == [1, 2, 3, 4]


def test_close_of_a_job_being_cancelled_for_its_timeout_gives_job_timeout() -> None:
    s = busy_pool()
    s(ev.JobAck(0.5, 1, 2))
    s.until(10.2)  # job 1 passes its job_timeout at 10.2
    assert s.core.jobs[1].state == "cancelling"
    out = s(ev.Close(10.3))
    assert out[0] == settle(1, "cancelled", JobTimeout,
                            "job 1 ran past its timeout of 10s and was cancelled; the pool closed")
    assert out[1] == settle(2, "failed", PoolClosed, "job 2 did not finish: the pool closed")


def test_close_while_starting_kills_every_starting_child_and_closes_on_their_reap() -> None:
    s = Script(cfg(num_idle=2, max_children=3))
    s.feed(ev.Spawned(0.1, 0, 100), ev.Hello(0.1, 0))
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.Close(0.2)) == [
        ev.Kill(0, "pool closing"),
        ev.Kill(1, "pool closing"),
    ]
    assert s.core.status().reason == "the pool is closing"
    # Killing starting children on close is not their failure.
    assert s.core.status().restart_budget == 3
    s(ev.ChildExited(0.3, 0, -9))
    assert s.core.pool_state == "closing"
    s(ev.ChildExited(0.3, 1, -9))
    assert s.core.pool_state == "closed"


def test_close_while_backing_off_closes_at_once_when_nothing_lives() -> None:
    s = Script(cfg(max_children=1, max_restarts=0))
    s(ev.Submit(0.0, 1))
    s(ev.ChildExited(0.1, 0, None))
    assert s.core.pool_state == "backing_off"
    assert s(ev.Close(0.2)) == [
        settle(1, "failed", PoolClosed, "job 1 did not finish: the pool closed"),
    ]
    assert view(s.core) == state("closed", available=False, budget=0, backoff=1,
                                 config=cfg(max_children=1, max_restarts=0))


def test_close_in_a_draining_pool_settles_what_drain_was_waiting_for() -> None:
    s = busy_pool()
    s(ev.Drain(1.0))
    out = s(ev.Close(1.1))
    assert out[:2] == [
        settle(1, "failed", PoolClosed, "job 1 did not finish: the pool closed"),
        settle(2, "failed", PoolClosed, "job 2 did not finish: the pool closed"),
    ]
    assert s.core.pool_state == "closing"
    assert s.core.pool.deadline == 1.1 + 7.0
