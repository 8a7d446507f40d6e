"""Jobs: ack, results, timeouts, cancellation, memory limits and recycling."""

from __future__ import annotations

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.errors import ChildDied, JobCancelled, JobFailed, JobTimeout, NoCapacity

from .script import ANY, Has, Script, cfg, settle, state, view

TWO = cfg(max_children=2)


def two_ready(config: PoolConfig = TWO) -> Script:
    """Two ready children (0 and 1); the pool keeps one idle, so it spawns nothing more."""
    s = Script(config)
    s.warm(0, 0.1)
    s(ev.Submit(0.1, 100))  # dispatched to 0; a second child is spawned for num_idle
    s.warm(1, 0.1)
    s(ev.JobAck(0.1, 0, 100))
    s(ev.JobDone(0.1, 0, 100))
    assert view(s.core) == state("running", {"ready": 2}, available=True, config=TWO)
    return s


def test_a_job_runs_and_its_value_and_error_are_delivered() -> None:
    s = two_ready()
    assert s(ev.Submit(1.0, 1)) == [ev.SendJob(0, 1)]
    assert view(s.core) == state("running", {"ready": 1, "busy": 1}, {"dispatched": 1},
                                 available=True, config=TWO)
    assert s.core.jobs[1].deadline == 1.0 + 5.0  # ack_timeout
    assert s(ev.JobAck(1.1, 0, 1)) == []
    assert s.core.jobs[1].deadline == 1.1 + 10.0  # job_timeout
    assert s(ev.Submit(1.2, 2, timeout=0.5)) == [
        ev.SendJob(1, 2),
        ev.ReportAvailability(False, "all 2 children are busy or starting and 0 jobs are queued"),
    ]
    assert view(s.core) == state("running", {"busy": 2}, {"dispatched": 1, "running": 1},
                                 available=False, config=TWO)
    s(ev.JobAck(1.3, 1, 2))
    assert s.core.jobs[2].deadline == 1.3 + 0.5  # the job's own timeout
    assert s(ev.JobRaised(1.4, 1, 2, "ValueError", "bad input", "Traceback...")) == [
        ev.SettleJob(2, ev.Outcome(
            state="failed", error=JobFailed, message="job 2 raised ValueError: bad input",
            remote_type="ValueError", remote_message="bad input",
            remote_traceback="Traceback...")),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]
    assert s(ev.JobDone(1.5, 0, 1, {"x": 1})) == [settle(1, "done", value={"x": 1})]
    assert view(s.core) == state("running", {"ready": 2}, available=True, config=TWO)


def test_jobs_queue_in_order_and_demand_spawns_up_to_max_children() -> None:
    s = Script(TWO)
    s.warm(0, 0.1)
    assert s.feed(ev.Submit(0.2, 1), ev.Submit(0.2, 2), ev.Submit(0.2, 3)) == [
        ev.SendJob(0, 1),
        ev.SpawnChild(1),
        ev.ReportAvailability(False, "all 2 children are busy or starting and 1 jobs are queued"),
    ]
    assert view(s.core) == state("running", {"spawned": 1, "busy": 1},
                                 {"queued": 2, "dispatched": 1}, queued=2, available=False,
                                 config=TWO)
    assert list(s.core.queue) == [2, 3]
    assert s.warm(1, 0.3) == [ev.SendInit(1), ev.SendJob(1, 2)]
    s.feed(ev.JobAck(0.4, 0, 1), ev.JobDone(0.5, 0, 1))
    assert s.of(ev.SendJob)[-1] == ev.SendJob(0, 3)


def test_the_ack_timeout_kills_the_child_and_requeues_the_job_when_its_stream_ends() -> None:
    s = two_ready()
    s(ev.Submit(1.0, 1))
    # The ack may still be in flight: the job stays with its child, which is killed.
    assert s.at_deadline() == [ev.Kill(0, "sent no ack for job 1 within ack_timeout=5s")]
    assert s.now == 6.0
    assert view(s.core) == state("running", {"ready": 1, "failed": 1}, {"unacked": 1},
                                 available=True, budget=2, config=TWO)
    assert s.core.jobs[1].deadline == 6.0 + 4.0  # kill_timeout: a backstop of the reap
    # The killed child's stream ended with no ack: the job never started. It goes
    # to the idle child; a child is spawned to keep one idle.
    assert s(ev.ChildExited(6.1, 0, -9)) == [
        ev.SendJob(1, 1),
        ev.SpawnChild(2),
        ev.ReportAvailability(False, Has("sent no ack for job 1")),
    ]
    s(ev.JobAck(6.2, 1, 1))
    assert s(ev.JobDone(6.3, 1, 1, "once"))[0] == settle(1, "done", value="once")
    assert list(s.outcomes) == [100, 1]


def test_an_ack_that_comes_after_the_ack_timeout_means_the_job_started_it_never_runs_twice(
) -> None:
    s = two_ready()
    s(ev.Submit(1.0, 1))
    assert s.at_deadline() == [ev.Kill(0, "sent no ack for job 1 within ack_timeout=5s")]
    # The ack was in flight (the parent was stalled): read before the stream ends,
    # it is the truth. The job runs on the child being killed, never on another.
    assert s(ev.JobAck(6.1, 0, 1)) == []
    assert view(s.core) == state("running", {"ready": 1, "failed": 1}, {"running": 1},
                                 available=True, budget=2, config=TWO)
    assert s(ev.ChildExited(6.2, 0, -9)) == [settle(
        1, "failed", ChildDied,
        "job 1: child 0 (pid 100) sent no ack for job 1 within ack_timeout=5s; its ack came "
        "after that: job 1 had started, so it is not run again")]
    assert s.of(ev.SendJob) == [ev.SendJob(0, 100), ev.SendJob(0, 1)]  # sent once


def test_a_requeued_job_whose_queue_budget_is_spent_fails_at_once() -> None:
    # A kill_timeout long enough that the reap at 21.5 s is no stall of the
    # parent (the core was driven before each of its deadlines).
    s = two_ready(cfg(max_children=2, kill_timeout=30.0))
    s(ev.Submit(1.0, 1))
    s.at_deadline()  # 6.0: ack timeout, child 0 killed
    # Reaped after the job's queue budget (20 s from submission) ran out: it
    # fails now rather than waiting for the next tick, or taking the idle child.
    assert s(ev.ChildExited(21.5, 0, -9))[0] == settle(1, "failed", NoCapacity, Has(
        "waited queue_timeout=20s"))
    assert s.core.jobs == {}
    assert s.of(ev.SendJob) == [ev.SendJob(0, 100), ev.SendJob(0, 1)]


def test_job_timeout_sends_cancel_and_the_cancel_ack_gives_job_timeout() -> None:
    s = two_ready()
    s.feed(ev.Submit(1.0, 1), ev.JobAck(1.0, 0, 1))
    assert s.at_deadline() == [ev.SendCancel(0, 1)]
    assert s.now == 11.0
    assert view(s.core) == state("running", {"ready": 1, "stopping": 1}, {"cancelling": 1},
                                 available=True, config=TWO)
    assert s.core.jobs[1].deadline == 11.0 + 3.0  # close_timeout
    assert s(ev.CancelAck(11.5, 0, 1)) == [
        settle(1, "cancelled", JobTimeout, "job 1 ran past its timeout of 10s and was cancelled"),
    ]
    assert view(s.core) == state("running", {"ready": 1, "stopping": 1}, available=True,
                                 config=TWO)
    # The child exits as a cancel asks: no failure (child 1 is the idle one).
    assert s(ev.ChildExited(11.6, 0, 0)) == []
    assert view(s.core) == state("running", {"ready": 1}, available=True, config=TWO)


def test_cancel_of_a_queued_job_settles_it_at_once() -> None:
    s = Script(cfg(max_children=1))
    s.feed(ev.Submit(0.1, 1))
    assert view(s.core) == state("starting", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False)
    # No child was ever ready: unavailable before and after, nothing to report.
    assert s(ev.Cancel(0.2, 1)) == [
        settle(1, "cancelled", JobCancelled, "job 1 was cancelled before it started"),
    ]
    assert view(s.core) == state("starting", {"spawned": 1}, available=False)
    assert s.core.status().reason == "no ready child, and no child has become ready yet"
    # Cancel is idempotent: a second one, or one for an unknown job, does nothing.
    assert s(ev.Cancel(0.3, 1)) == []
    assert s(ev.Cancel(0.3, 99)) == []


def test_cancel_of_a_queued_job_frees_the_capacity_it_held() -> None:
    two = cfg(max_children=2)
    s = Script(two)
    s.warm(0, 0.1)
    # Child 0 runs job 1; child 1 warms in its place; job 2 waits for it.
    s.feed(ev.Submit(0.2, 1), ev.JobAck(0.2, 0, 1))
    assert s(ev.Submit(0.3, 2)) == [ev.ReportAvailability(
        False, "all 2 children are busy or starting and 1 jobs are queued")]
    assert view(s.core) == state("running", {"busy": 1, "spawned": 1},
                                 {"queued": 1, "running": 1}, queued=1, available=False,
                                 config=two)
    # Cancelled, job 2 no longer claims the warming child: available again.
    assert s(ev.Cancel(0.4, 2)) == [
        settle(2, "cancelled", JobCancelled, "job 2 was cancelled before it started"),
        ev.ReportAvailability(True, "a child is warming or can be spawned"),
    ]
    assert view(s.core) == state("running", {"busy": 1, "spawned": 1}, {"running": 1},
                                 available=True, config=two)


def test_cancel_of_a_dispatched_job_stops_its_child() -> None:
    s = two_ready()
    s(ev.Submit(1.0, 1))
    assert s(ev.Cancel(1.1, 1)) == [ev.SendCancel(0, 1)]
    assert view(s.core) == state("running", {"ready": 1, "stopping": 1}, {"cancelling": 1},
                                 available=True, config=TWO)
    # The ack crossed the cancel: ignored, the job stays cancelling.
    assert s(ev.JobAck(1.2, 0, 1)) == []
    assert s(ev.CancelAck(1.3, 0, 1)) == [
        settle(1, "cancelled", JobCancelled, "job 1 was cancelled"),
    ]
    assert s(ev.ChildExited(1.4, 0, 0)) == []
    assert view(s.core) == state("running", {"ready": 1}, available=True, config=TWO)


def test_cancel_of_a_running_job_that_finishes_anyway_delivers_its_value() -> None:
    s = two_ready()
    s.feed(ev.Submit(1.0, 1), ev.JobAck(1.0, 0, 1))
    assert s(ev.Cancel(1.1, 1)) == [ev.SendCancel(0, 1)]
    # The result crossed the cancel: it is the truth, delivered once.
    assert s(ev.JobDone(1.2, 0, 1, "v")) == [settle(1, "done", value="v")]
    assert s(ev.CancelAck(1.3, 0, 1)) == []
    assert s(ev.Cancel(1.3, 1)) == []
    assert view(s.core) == state("running", {"ready": 1, "stopping": 1}, available=True,
                                 config=TWO)
    assert list(s.outcomes) == [100, 1]


def test_a_cancelled_job_whose_child_never_answers_is_cancelled_and_the_child_killed() -> None:
    s = two_ready()
    s.feed(ev.Submit(1.0, 1), ev.JobAck(1.0, 0, 1))
    s(ev.Cancel(2.0, 1))
    assert s.at_deadline() == [
        ev.Kill(0, "cancelling job 1; then did not stop within close_timeout=3s"),
        settle(1, "cancelled", JobCancelled, "job 1 was cancelled; its child was killed"),
    ]
    assert s.now == 5.0
    assert view(s.core) == state("running", {"ready": 1, "failed": 1}, available=True,
                                 config=TWO)


def test_a_cancelled_job_whose_child_dies_is_cancelled() -> None:
    s = two_ready()
    s.feed(ev.Submit(1.0, 1), ev.JobAck(1.0, 0, 1), ev.Cancel(2.0, 1))
    assert s(ev.ChildExited(2.1, 0, -15)) == [
        settle(1, "cancelled", JobCancelled, "job 1 was cancelled; its child ended"),
    ]
    assert view(s.core) == state("running", {"ready": 1}, available=True, config=TWO)


def test_memory_over_the_limit_kills_and_the_job_dies_naming_memory() -> None:
    config = cfg(max_children=2, memory_warn_mb=50.0, memory_limit_mb=100.0)
    s = Script(config)
    s.warm(0, 0.1)
    s.feed(ev.Submit(0.2, 1, timeout=500.0), ev.JobAck(0.2, 0, 1))
    s.warm(1, 0.3)
    assert s.at_deadline() == [ev.SendPing(0), ev.SendPing(1), ev.SampleMemory((0, 1))]
    assert s(ev.MemorySample(40.0, 1, 20.0)) == []
    assert s(ev.MemorySample(40.0, 0, 150.0)) == [
        ev.Kill(0, "memory 150 MB over memory_limit_mb=100"),
    ]
    assert view(s.core) == state("running", {"ready": 1, "failed": 1}, {"running": 1},
                                 available=True, budget=2, config=config)
    assert s(ev.ChildExited(40.1, 0, -9)) == [
        settle(1, "failed", ChildDied,
               "job 1: child 0 (pid 100) memory 150 MB over memory_limit_mb=100"),
    ]
    assert view(s.core) == state("running", {"ready": 1}, available=True, budget=2,
                                 config=config)


def test_memory_warning_is_logged_once_per_crossing() -> None:
    config = cfg(memory_warn_mb=50.0)
    s = Script(config)
    s.warm(0, 0.1)
    logs = (ev.Log,)
    warning = ev.Log("warning", "child 0 uses 60 MB, over memory_warn_mb=50", 0, None)
    assert s(ev.MemorySample(1.0, 0, 60.0), keep=logs) == [warning]
    assert s(ev.MemorySample(2.0, 0, 70.0), keep=logs) == []
    assert s(ev.MemorySample(3.0, 0, 40.0), keep=logs) == []
    assert s(ev.MemorySample(4.0, 0, 60.0), keep=logs) == [warning]
    # A warning is no kill.
    assert view(s.core) == state("running", {"ready": 1}, available=True, config=config)


def test_memory_samples_for_unknown_or_dying_children_are_ignored() -> None:
    config = cfg(memory_limit_mb=100.0)
    s = Script(config)
    s.warm(0, 0.1)
    assert s(ev.MemorySample(1.0, 7, 500.0)) == []
    s(ev.BadMessage(1.0, 0, "x"))
    assert s(ev.MemorySample(1.1, 0, 500.0)) == []
    assert s.core.children[0].reason == "bad message: x"


def test_max_jobs_per_child_recycles_with_a_stop_and_a_replacement() -> None:
    config = cfg(max_children=1, max_jobs_per_child=2)
    s = Script(config)
    s.warm(0, 0.1)
    s.feed(ev.Submit(0.2, 1), ev.JobAck(0.2, 0, 1))
    assert s(ev.JobDone(0.3, 0, 1)) == [settle(1, "done"), ev.ReportAvailability(True, ANY)]
    s.feed(ev.Submit(0.4, 2), ev.JobAck(0.4, 0, 2))
    assert s(ev.JobDone(0.5, 0, 2)) == [settle(2, "done"), ev.SendStop(0)]
    assert view(s.core) == state("running", {"stopping": 1}, available=False, config=config)
    assert s.core.children[0].deadline == 0.5 + 3.0  # close_timeout
    assert s.core.children[0].reason == "recycled after 2 jobs"
    # A job submitted now waits for the replacement, which the exit frees a slot for.
    assert s(ev.Submit(0.6, 3)) == []
    assert s(ev.ChildExited(0.7, 0, 0)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, config=config)
    assert s.warm(1, 0.8) == [ev.SendInit(1), ev.SendJob(1, 3)]


def test_a_recycled_child_is_replaced_at_once_when_there_is_room() -> None:
    config = cfg(num_idle=1, max_children=2, max_jobs_per_child=1)
    s = Script(config)
    s.warm(0, 0.1)
    assert s(ev.Submit(0.2, 1)) == [ev.SendJob(0, 1), ev.SpawnChild(1)]
    s(ev.JobAck(0.2, 0, 1))
    assert s(ev.ChildExited(0.3, 1, None)) == [  # the spare could not start
        ev.SpawnChild(2), ev.ReportAvailability(False, ANY)]
    assert s(ev.JobDone(0.4, 0, 1)) == [settle(1, "done"), ev.SendStop(0)]
    assert view(s.core) == state("running", {"spawned": 1, "stopping": 1}, available=False,
                                 budget=2, config=config)


def test_a_queued_job_keeps_its_deadline_when_requeued() -> None:
    s = Script(cfg(max_children=1))
    s.warm(0, 0.1)
    s(ev.Submit(1.0, 1))
    s(ev.ChildExited(8.0, 0, -9))  # before the ack: requeued
    assert s.core.jobs[1].state == "queued"
    assert s.core.jobs[1].deadline == 1.0 + 20.0
    # No child ever becomes ready again: NoCapacity at submission + queue_timeout.
    while 1 in s.core.jobs:
        s.at_deadline()
        for c in list(s.core.children.values()):
            if c.state == "failed":
                s(ev.ChildExited(s.now, c.ident, -9))
    assert s.now == 21.0
    assert s.outcomes[1] == settle(1, "failed", NoCapacity, "queue_timeout=20s").outcome


def test_messages_about_jobs_a_child_does_not_hold_break_the_protocol() -> None:
    s = two_ready()
    assert s(ev.JobDone(1.0, 0, 55, "?")) == [
        ev.Kill(0, "protocol violation: result for job 55, which it does not hold"),
    ]
    s(ev.Submit(1.1, 1))  # to child 1
    assert s(ev.JobDone(1.2, 1, 1)) == [
        ev.Kill(1, "protocol violation: result for job 1 while the job is dispatched"),
    ]
    assert view(s.core) == state("running", {"failed": 2}, {"dispatched": 1},
                                 available=False, budget=1, config=TWO)
