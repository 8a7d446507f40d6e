"""The parent's own stall: a core driven long after its next deadline blames no child.

Issue 15 item 1: the user's code blocks the event loop for 12 s (or the parent
is SIGSTOPped), 8 children, 4 mid-job, defaults otherwise. Every ping deadline
passes while nobody reads the children's pongs. The core must notice that it
was driven late (more than ``PoolConfig.stall_threshold`` past its next
deadline), renew the deadlines that wait on children, ping them again and say
so once; a child that stays silent while the parent listens is still killed.
"""

from __future__ import annotations

import pytest

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.errors import ConfigError, JobTimeout, NoCapacity

from .script import Has, Script, settle

#: The issue's pool: defaults (ping_interval 2.5 s, ping_timeout 10 s), 8 children.
EIGHT = PoolConfig(num_idle=8, max_children=8)


def busy_pool(config: PoolConfig = EIGHT, jobs: int = 4) -> Script:
    """Eight ready children, ``jobs`` of them running a job (jobs 0..), pinged and
    answering every ping until t=20: a healthy pool the parent has been listening to."""
    s = Script(config)
    for child in range(config.max_children):
        s.warm(child, 0.1)
    for job in range(jobs):
        s(ev.Submit(0.2, job))
        s(ev.JobAck(0.2, job, job))  # the oldest ready child takes each job
    listen(s, 20.0)
    assert not s.of(ev.Kill)
    assert {c.state for c in s.core.children.values()} == {"ready", "busy"}
    return s


def listen(s: Script, until: float, silent: tuple[int, ...] = ()) -> list[ev.Command]:
    """Drive the core at each of its deadlines up to ``until`` (a parent that
    listens), every child but ``silent`` answering each ping 10 ms later."""
    out: list[ev.Command] = []
    while (deadline := s.core.next_deadline()) is not None and deadline <= until:
        step = s(ev.DeadlineReached(max(deadline, s.now)))
        out += step
        for cmd in step:
            if isinstance(cmd, ev.SendPing) and cmd.child not in silent:
                out += s(ev.Pong(s.now + 0.01, cmd.child))
    return out


def stall_logs(s: Script) -> list[ev.Log]:
    return [c for c in s.commands if isinstance(c, ev.Log) and "stalled" in c.message]


def test_a_12s_stall_re_probes_every_child_and_kills_none() -> None:
    s = busy_pool()
    last = s.now
    assert s.core.next_deadline() == pytest.approx(22.5)  # the next heartbeat
    stall_end = 22.5 + 9.5
    out = s(ev.DeadlineReached(stall_end))  # the loop was blocked for 12 s
    assert [c for c in out if isinstance(c, ev.Kill)] == []
    assert sorted(c.child for c in out if isinstance(c, ev.SendPing)) == list(range(8))
    [warning] = stall_logs(s)
    assert warning.level == "warning"
    assert f"not driven for {stall_end - last:.1f}s, 9.5s past its next deadline" in (
        warning.message)
    assert stall_end - last == pytest.approx(12.0, abs=0.1)
    assert "renewing the deadlines of 8 children and pinging the 8 ready or busy" in (
        warning.message)
    assert s.core.status().children["busy"] == 4
    assert s.core.status().children["ready"] == 4
    assert s.core.status().restart_budget == EIGHT.max_restarts
    assert s.core.pool_state == "running"
    # Each child has a full ping_timeout from the end of the stall.
    assert {c.deadline for c in s.core.children.values()} == {stall_end + 10.0}
    # The children answer: the pool goes on, the jobs finish, and no second warning.
    for child in range(8):
        s(ev.Pong(stall_end + 0.01, child))
    for job in range(4):
        assert s(ev.JobDone(stall_end + 0.02, job, job, "ok")) == [settle(job, "done", value="ok")]
    listen(s, last + 60.0)
    assert len(stall_logs(s)) == 1
    assert not s.of(ev.Kill)


def test_a_child_silent_after_the_re_probe_is_killed_while_the_parent_listens() -> None:
    s = busy_pool()
    end = s.now + 12.0
    s(ev.DeadlineReached(end))
    # Seven answer; child 7 (ready) does not, then or later.
    for child in range(7):
        s(ev.Pong(end + 0.01, child))
    assert not [c for c in listen(s, end + 9.99, silent=(7,)) if isinstance(c, ev.Kill)]
    out = listen(s, end + 15.0, silent=(7,))
    assert [c for c in out if isinstance(c, ev.Kill)] == [
        ev.Kill(7, Has("answered no ping within ping_timeout=10s"))]
    # Killed a full ping_timeout of listening after the re-probe, not less.
    [killed] = [c for c in s.commands if isinstance(c, ev.Transitioned) and c.dest == "failed"]
    assert killed.now == pytest.approx(end + 10.0)
    assert len(stall_logs(s)) == 1


def test_lateness_within_stall_grace_is_ordinary_latency() -> None:
    # An ack deadline that passed 0.9 s before the core was driven (stall_threshold
    # 1 s, the default: min(1, (ping_timeout - ping_interval) / 2)): no stall, the
    # deadline judges.
    s = Script(PoolConfig(num_idle=1, max_children=2))
    assert s.core.config.stall_threshold == 1.0
    s.warm(0, 0.1)
    s(ev.Submit(0.2, 0))  # dispatched to child 0, no ack ever
    assert set(s.core.children) == {0, 1}  # child 1 replaces the busy one as idle
    s.warm(1, 0.2)
    # Ordinary drives up to the ack deadline (5.2 s), then one 0.9 s late.
    listen(s, 5.1)
    ack_deadline = s.core.jobs[0].deadline
    assert ack_deadline == pytest.approx(5.2)
    assert s.core.next_deadline() == ack_deadline
    out = s(ev.DeadlineReached(ack_deadline + 0.9))
    assert [c for c in out if isinstance(c, ev.Kill)] == [
        ev.Kill(0, Has("sent no ack for job 0 within ack_timeout=5s"))]
    assert not stall_logs(s)


def test_a_stall_renews_what_waits_on_children_and_not_the_users_wall_time() -> None:
    config = PoolConfig(num_idle=1, max_children=3, queue_timeout=8.0, job_timeout=4.0)
    s = Script(config)
    s.warm(0, 0.1)
    s(ev.Submit(0.2, 0))  # to child 0: dispatched, never acked
    s.warm(1, 0.2)
    s(ev.Submit(0.3, 1))
    s(ev.JobAck(0.3, 1, 1))  # running on child 1, job_timeout 4 s
    s(ev.Submit(0.4, 2))  # queued: child 2 is spawned but never says hello
    assert s.child(2) == "spawned" and s.job(2) == "queued"
    out = s(ev.DeadlineReached(20.0))  # stalled from 0.4 s to 20 s
    # Nobody is blamed: the ack, the hello and the pings may sit unread ...
    assert [c for c in out if isinstance(c, ev.Kill)] == []
    assert (s.child(0), s.child(1), s.child(2)) == ("busy", "stopping", "spawned")
    assert s.job(0) == "dispatched"
    assert s.core.jobs[0].deadline == 20.0 + config.ack_timeout
    assert s.core.children[2].deadline == 20.0 + config.spawn_timeout
    # ... but the user's bounds on wall time hold: job 1 ran past its timeout
    # (cancelled), job 2 waited past queue_timeout (NoCapacity).
    assert ev.SendCancel(1, 1) in out
    assert settle(2, "failed", NoCapacity, "waited queue_timeout=8s") in out
    assert len(stall_logs(s)) == 1
    # A result read after the stall still wins over the timeout that fired in it.
    assert s(ev.JobDone(20.01, 1, 1, "late but done")) == [
        settle(1, "done", value="late but done")]
    # The ack comes: job 0 runs, nobody was failed.
    s(ev.JobAck(20.02, 0, 0))
    assert s.job(0) == "running"
    assert s.core.status().restart_budget == config.max_restarts
    assert not [o for o in s.outcomes.values() if o.error is JobTimeout]


def test_a_stall_while_closing_keeps_the_pool_open_until_its_children_are_gone() -> None:
    s = Script(PoolConfig(num_idle=1, max_children=1))
    s.warm(0, 0.1)
    s(ev.Submit(0.2, 0))
    s(ev.JobAck(0.2, 0, 0))
    s(ev.Close(1.0))  # child 0 is asked to cancel; it never answers
    assert s.core.pool_state == "closing" and s.child(0) == "stopping"
    s(ev.DeadlineReached(40.0))  # stalled past close_timeout, kill_timeout, shutdown_timeout
    assert s.core.pool_state == "closing" and s.child(0) == "stopping"
    assert not s.of(ev.Kill)
    # Listening again: the child is judged in time, then the pool closes.
    s.until(60.0)
    assert s.of(ev.Kill) == [ev.Kill(0, Has("did not stop within close_timeout=5s"))]
    assert s.core.pool_state == "closed"


def test_the_stall_threshold_defaults_and_validation() -> None:
    assert PoolConfig().stall_threshold == 1.0
    assert PoolConfig(ping_interval=0.1, ping_timeout=0.3).stall_threshold == pytest.approx(0.1)
    assert PoolConfig(stall_grace=3.0).stall_threshold == 3.0
    with pytest.raises(ConfigError, match=r"stall_grace=8\.0 must be below ping_timeout - "
                                          r"ping_interval=7\.5"):
        PoolConfig(stall_grace=8.0)
    for bad in (0, -1.0, float("inf"), "1"):
        with pytest.raises(ConfigError, match="stall_grace must be a finite number > 0"):
            PoolConfig(stall_grace=bad)  # type: ignore[arg-type]
