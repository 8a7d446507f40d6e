"""The core's deadline heap: lazy deletion of stale entries, renewed deadlines, ties.

next_deadline() is the top of a heap of (deadline, group, ident) entries, and a
DeadlineReached pops only the entries that are due: no scan of every job. These
tests hold it to what the scan it replaced computed (the earliest deadline of
any record), and to the order in which deadlines due together fire. Script
also checks, after every event of every scripted test, that next_deadline()
equals that scan (check_invariants).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fsm import events as ev
from fsm.core import SupervisorCore

from .script import Script, cfg


def timeouts(commands: list[ev.Command]) -> list[tuple[str, int]]:
    """The records whose deadline fired, in firing order."""
    return [(c.kind, c.ident) for c in commands
            if isinstance(c, ev.Transitioned) and c.event == "timeout"]


def ready_script(jobs: int = 0) -> Script:
    """Child 0 ready at 0.25, then jobs 1..``jobs`` submitted at 0.5: job 1 runs on child 0
    (max_children=1), the others queue. One wake here fires deadlines 25 s
    apart: stall_grace is set so that such a wake is no stall of the parent
    (which renews instead of firing; tests/core/test_parent_stall.py)."""
    s = Script(cfg(num_idle=1, max_children=1, stall_grace=50.0))
    s.warm(0, 0.25)
    for j in range(1, jobs + 1):
        s(ev.Submit(0.5, j))
    return s


def test_a_stale_entry_does_not_fire() -> None:
    # Job 1's ack deadline (0.5 + ack_timeout 5) is replaced by its job
    # deadline (1 + job_timeout 10) when the ack comes: the entry for 5.5
    # stays in the heap, stale. Waking at 5.5 must not time the job out.
    s = ready_script(jobs=1)
    assert s.core.jobs[1].deadline == 5.5
    s.core.handle(ev.JobAck(1.0, 0, 1))  # not s(...): its invariants ask next_deadline()
    assert s.core.jobs[1].deadline == 11.0
    assert any(entry == (5.5, 1, 1) for entry in s.core._heap()), "the entry is left, stale"
    assert timeouts(s(ev.DeadlineReached(5.5), keep=(ev.Transitioned,))) == []
    assert s.job(1) == "running"
    assert all(entry[0] > 5.5 for entry in s.core._heap()), "a due stale entry is dropped"
    assert timeouts(s(ev.DeadlineReached(11.0), keep=(ev.Transitioned,))) == [("job", 1)]
    assert s.job(1) == "cancelling"


def test_next_deadline_skips_stale_entries_at_the_top() -> None:
    s = ready_script(jobs=1)
    s.core.handle(ev.JobAck(1.0, 0, 1))
    heap = s.core._heap()
    assert min(heap)[0] == 5.5  # the stale ack deadline is the heap's top...
    assert s.core.next_deadline() == 11.0  # ...but not the next deadline
    assert min(heap)[0] == 11.0  # and next_deadline dropped it


def test_a_renewed_ping_deadline_fires_at_its_new_time_only() -> None:
    # ping_timeout 100: child 0, ready at 0.25, must answer by 100.25; its
    # pong to the heartbeat's ping at 40 renews that to 141 (the old entry
    # stays in the heap). Nothing answers the ping at 120.
    s = ready_script()
    assert s.core.children[0].deadline == 100.25
    assert ev.SendPing(0) in s.until(40.0)
    s.core.handle(ev.Pong(41.0, 0))
    assert s.core.children[0].deadline == 141.0
    assert (100.25, 0, 0) in s.core._heap()
    mark = len(s.commands)
    s.until(100.25 + 1.0)
    assert ("child", 0) not in timeouts(s.commands[mark:]) and s.child(0) == "ready"
    mark = len(s.commands)
    assert [c.child for c in s.until(141.0) if isinstance(c, ev.Kill)] == [0]
    assert ("child", 0) in timeouts(s.commands[mark:])


def test_deadlines_due_together_fire_children_then_jobs_in_id_order_then_the_pool() -> None:
    # At 20 a spawning child (spawn_timeout), two queued jobs (queue_timeout)
    # and the starting pool (start_timeout) are all due.
    s = Script(cfg(num_idle=1, max_children=1, spawn_timeout=20.0, queue_timeout=20.0,
                   start_timeout=20.0, initialize_timeout=0.5))
    s(ev.Submit(0.0, 1))
    s(ev.Submit(0.0, 2))
    assert s.core.children[0].deadline == s.core.jobs[1].deadline == 20.0
    assert s.core.jobs[2].deadline == s.core.pool.deadline == 20.0
    fired = timeouts(s(ev.DeadlineReached(20.0), keep=(ev.Transitioned,)))
    assert fired[:3] == [("child", 0), ("job", 1), ("job", 2)]
    assert ("pool", 0) in fired[3:]


def test_one_wake_fires_every_due_deadline_earliest_first_and_no_later_one() -> None:
    # Job 1 (dispatched to child 0 at 0.5) misses its ack at 5.5; job 2
    # (queued at 0.5) spends its queue budget at 20.5. One wake at 30 fires
    # both, in that order; the kill it sends arms child 0's kill_timeout for
    # 34, which is not due yet.
    s = ready_script(jobs=2)
    fired = timeouts(s(ev.DeadlineReached(30.0), keep=(ev.Transitioned,)))
    assert fired == [("job", 1), ("job", 2)]
    assert s.job(2) == "failed" and s.child(0) == "failed"
    assert s.core.children[0].deadline == 34.0 == s.core.next_deadline()


def test_stale_entries_do_not_pile_up() -> None:
    # Every pong renews the child's deadline and leaves the old entry stale;
    # the heap is rebuilt when stale entries dominate, so it stays bounded.
    s = ready_script()
    live = len(s.core.children) + len(s.core.jobs) + 1
    most = 0
    t = 0.25
    for _ in range(2_000):
        t += 0.25
        s(ev.Pong(t, 0))
        most = max(most, len(s.core._heap()))
    assert most <= 2 * live + 64 + 1
    assert s.core.next_deadline() is not None


def test_a_clone_has_its_own_heap() -> None:
    s = ready_script(jobs=2)
    due = s.core.next_deadline()  # builds the heap
    original = s.core._heap()
    before = sorted(original)
    copy = s.core.clone()
    assert copy._deadlines is not original and sorted(copy._heap()) == before
    fired = copy.handle(ev.DeadlineReached(30.0))  # pops due entries from the copy's heap only
    assert ("job", 2) in timeouts(fired) and 2 not in copy.jobs
    assert sorted(s.core._heap()) == before
    assert s.core.next_deadline() == due
    assert s.core.handle(ev.DeadlineReached(30.0)) == fired


def test_a_restored_core_rebuilds_its_heap_from_the_records() -> None:
    s = ready_script(jobs=2)
    s(ev.JobAck(1.0, 0, 1))  # job 1's ack entry is left stale
    assert len(s.core._heap()) > len(s.core.children) + len(s.core.jobs) + 1
    restored = SupervisorCore.restore(s.core.config, s.core.snapshot(), now=s.now)
    assert restored._deadlines is None  # derived: not part of the snapshot
    assert restored.next_deadline() == s.core.next_deadline()
    live = sorted(e for e in s.core._heap() if s.core._armed(e) is not None)
    assert sorted(restored._heap()) == live
    assert (restored.handle(ev.DeadlineReached(30.0))
            == s.core.clone().handle(ev.DeadlineReached(30.0)))


class CountingDict(dict[int, Any]):
    """A records dict that counts the walks over it."""

    walks = 0

    def values(self) -> Any:
        CountingDict.walks += 1
        return super().values()

    def items(self) -> Any:
        CountingDict.walks += 1
        return super().items()

    def __iter__(self) -> Iterator[int]:
        CountingDict.walks += 1
        return super().__iter__()


def test_neither_next_deadline_nor_a_firing_walks_the_jobs() -> None:
    # 2,000 queued jobs; firing one job's queue_timeout and asking for the
    # next deadline must touch O(log n) heap entries, not every job. (The wake
    # at 20.25 is 15 s past job 0's ack deadline: stall_grace makes it no stall
    # of the parent, whose re-probe walks every record once.)
    s = Script(cfg(num_idle=1, max_children=1, stall_grace=50.0))
    s.warm(0, 0.25)
    s(ev.Submit(0.25, 0))  # child 0 busy
    core = s.core
    for j in range(1, 2_001):
        core.handle(ev.Submit(0.25 + j / 1024, j))
    core.next_deadline()  # the heap is built once
    core.jobs = CountingDict(core.jobs)
    CountingDict.walks = 0
    assert core.next_deadline() is not None
    out = core.handle(ev.DeadlineReached(20.25 + 1 / 1024))  # job 1's queue budget
    assert [c.job for c in out if isinstance(c, ev.SettleJob)] == [1]
    core.next_deadline()
    assert CountingDict.walks == 0


def test_a_bounded_wake_fires_the_earliest_and_leaves_the_rest_due_in_order() -> None:
    # Job 1 misses its ack at 5.5 (its child is killed, 34 is its kill
    # deadline); jobs 2..6 spend their queue budget at 20.5. DeadlineReached
    # with most=2 fires two; the rest stay due and fire, in the same order as
    # one unbounded wake fires them all, in the following bounded wakes.
    s = ready_script(jobs=6)
    whole = s.core.clone()
    everything = timeouts(whole.handle(ev.DeadlineReached(30.0)))
    assert everything == [("job", j) for j in range(1, 7)]
    sliced: list[tuple[str, int]] = []
    first = timeouts(s(ev.DeadlineReached(30.0, most=2), keep=(ev.Transitioned,)))
    assert first == [("job", 1), ("job", 2)]
    assert s.core.next_deadline() == 20.5  # still due
    sliced += first
    while (d := s.core.next_deadline()) is not None and d <= 30.0:
        step = timeouts(s(ev.DeadlineReached(30.0, most=2), keep=(ev.Transitioned,)))
        assert 1 <= len(step) <= 2
        sliced += step
    assert sliced == everything
    assert s.core.snapshot() == whole.snapshot()
