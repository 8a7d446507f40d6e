"""Each fault at each child state, with the resulting status and commands.

Faults: the process exits; it hangs (its state's deadline passes, then the
kill's own); it reports an init error; it sends a bad message. States:
spawned, warming, ready, busy with a dispatched job, busy with a running job,
stopping, failed. max_children=1 so that every replacement waits for the
slot to be released, which the scripts make visible.
"""

from __future__ import annotations

from fsm import events as ev
from fsm.errors import ChildDied, JobTimeout

from .script import ANY, Has, Script, cfg, settle, state, view

ONE = cfg(max_children=1)
RECYCLE = cfg(max_children=1, max_jobs_per_child=1)
# The availability reasons of a pool with no ready child.
NEVER_READY = "no ready child, and no child has become ready yet"
LAST_FAILED = "no ready child, and the last child failed: "


def at_spawned() -> Script:
    s = Script(ONE)
    # Unavailable until a child has become ready: spawning is not proven yet.
    assert s.started == [ev.SpawnChild(0), ev.ReportAvailability(False, NEVER_READY)]
    return s


def at_warming() -> Script:
    s = at_spawned()
    assert s.feed(ev.Spawned(0.1, 0, 100), ev.Hello(0.1, 0)) == [ev.SendInit(0)]
    return s


def at_ready(config: object = ONE) -> Script:
    s = Script(config)  # type: ignore[arg-type]
    s.feed(ev.Spawned(0.1, 0, 100), ev.Hello(0.1, 0))
    assert s(ev.Ready(0.2, 0)) == [ev.ReportAvailability(True, "a ready child is idle")]
    assert view(s.core) == state("running", {"ready": 1}, available=True)
    return s


def at_dispatched(config: object = ONE) -> Script:
    s = at_ready(config)
    assert s(ev.Submit(0.3, 1)) == [
        ev.SendJob(0, 1),
        ev.ReportAvailability(False, "all 1 children are busy or starting and 0 jobs are queued"),
    ]
    return s


def at_running(config: object = ONE) -> Script:
    s = at_dispatched(config)
    assert s(ev.JobAck(0.4, 0, 1)) == []
    assert view(s.core) == state("running", {"busy": 1}, {"running": 1}, available=False)
    return s


def at_stopping() -> Script:
    s = at_running(RECYCLE)
    # max_jobs_per_child=1: the child is recycled after its job.
    assert s(ev.JobDone(0.5, 0, 1, "r")) == [settle(1, "done", value="r"), ev.SendStop(0)]
    assert view(s.core) == state("running", {"stopping": 1}, available=False, config=RECYCLE)
    return s


def at_failed() -> Script:
    s = at_ready()
    assert s(ev.BadMessage(0.3, 0, "garbage")) == [
        ev.Kill(0, "bad message: garbage"),
        ev.ReportAvailability(False, Has("bad message")),
    ]
    assert view(s.core) == state("running", {"failed": 1}, available=False, budget=2)
    return s


def reason(s: Script) -> str:
    return s.core.status().reason


# --- the child exits ------------------------------------------------------------


def test_exit_while_spawned() -> None:
    s = at_spawned()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.ChildExited(0.5, 0, 1)) == [ev.SpawnChild(1)]
    assert reason(s) == LAST_FAILED + "child 0: exited with code 1 while spawned"
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)


def test_spawn_that_could_not_start() -> None:
    s = at_spawned()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.ChildExited(0.5, 0, None)) == [ev.SpawnChild(1)]
    assert reason(s) == LAST_FAILED + "child 0: could not be started while spawned"
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)


def test_exit_while_warming() -> None:
    s = at_warming()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.ChildExited(0.5, 0, 3)) == [ev.SpawnChild(1)]
    assert reason(s) == LAST_FAILED + "child 0: exited with code 3 while warming"
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)


def test_exit_while_ready() -> None:
    s = at_ready()
    assert s(ev.ChildExited(0.5, 0, -9)) == [
        ev.SpawnChild(1),
        ev.ReportAvailability(False, Has("child 0: exited with code -9 while ready")),
    ]
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)


def test_exit_while_busy_before_the_ack_requeues_the_job() -> None:
    s = at_dispatched()
    # No ack before the end of the stream: the job never started.
    assert s(ev.ChildExited(0.5, 0, -9)) == [ev.SpawnChild(1)]
    assert reason(s) == (
        "no ready child, and the last child failed: child 0: exited with code -9 while busy"
    )
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, budget=2)
    # It runs on the replacement, and is settled once, done.
    assert s.warm(1, 0.6) == [ev.SendInit(1), ev.SendJob(1, 1)]
    s(ev.JobAck(0.7, 1, 1))
    assert s(ev.JobDone(0.8, 1, 1, "r")) == [
        settle(1, "done", value="r"),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]
    assert s.outcomes == {1: settle(1, "done", value="r").outcome}


def test_exit_while_busy_after_the_ack_fails_the_job_with_child_died() -> None:
    s = at_running()
    assert s(ev.ChildExited(0.5, 0, -9)) == [
        settle(1, "failed", ChildDied, "job 1: child 0 (pid 100) exited with code -9 while busy"),
        ev.SpawnChild(1),
    ]
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)


def test_exit_while_stopping_is_no_failure() -> None:
    s = at_stopping()
    assert s(ev.ChildExited(0.6, 0, 0)) == [
        ev.SpawnChild(1),
        ev.ReportAvailability(True, "a child is warming or can be spawned"),
    ]
    assert view(s.core) == state("running", {"spawned": 1}, available=True, config=RECYCLE)


def test_exit_while_failed_is_the_reap() -> None:
    s = at_failed()
    assert s(ev.ChildExited(0.5, 0, -9)) == [ev.SpawnChild(1)]
    # The kill was already counted as the failure; the reap is not a second one.
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)
    assert reason(s) == LAST_FAILED + "child 0: bad message: garbage"


# --- the child hangs: its state's deadline, then the kill's --------------------------


def test_hang_while_spawned_is_killed_at_spawn_timeout_then_abandoned() -> None:
    s = at_spawned()
    assert s.core.next_deadline() == 1.0
    # Unavailable already (no child was ever ready): nothing to report.
    assert s.at_deadline() == [ev.Kill(0, "sent no hello within spawn_timeout=1s")]
    assert reason(s) == LAST_FAILED + "child 0: sent no hello within spawn_timeout=1s"
    assert view(s.core) == state("starting", {"failed": 1}, available=False, budget=2)
    assert s.core.next_deadline() == 1.0 + 4.0
    # Never reaped: abandoned at kill_timeout, the slot goes to a replacement.
    assert s.at_deadline() == [ev.SpawnChild(1)]
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)
    assert s.of(ev.Log)[-1] == ev.Log(
        "error", "child 0 (pid None) was not reaped 4s after SIGKILL; abandoned, its slot "
        "released (sent no hello within spawn_timeout=1s)", 0, None)


def test_hang_while_warming_is_killed_at_initialize_timeout_then_abandoned() -> None:
    s = at_warming()
    assert s.core.next_deadline() == 0.1 + 2.0
    # Unavailable already (no child was ever ready): nothing to report.
    assert s.at_deadline() == [
        ev.Kill(0, "did not finish its initializer within initialize_timeout=2s"),
    ]
    assert reason(s) == LAST_FAILED + (
        "child 0: did not finish its initializer within initialize_timeout=2s")
    assert view(s.core) == state("starting", {"failed": 1}, available=False, budget=2)
    assert s.at_deadline() == [ev.SpawnChild(1)]
    assert s.now == 0.1 + 2.0 + 4.0
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)


def test_hang_while_ready_pings_then_kills_at_ping_timeout() -> None:
    s = at_ready()
    # Heartbeats at 40 and 80 ping the child; it never answers.
    assert s.at_deadline() == [ev.SendPing(0)]
    assert s.now == 40.0
    assert s.at_deadline() == [ev.SendPing(0)]
    assert s.now == 80.0
    assert s.at_deadline() == [
        ev.Kill(0, "answered no ping within ping_timeout=100s"),
        ev.ReportAvailability(False, Has("answered no ping")),
    ]
    assert s.now == 0.2 + 100.0
    assert view(s.core) == state("running", {"failed": 1}, available=False, budget=2)
    assert s.until(104.2) == [ev.SpawnChild(1)]
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)


def test_pong_renews_the_ready_deadline() -> None:
    s = at_ready()
    assert s.core.children[0].deadline == 100.2
    assert s.at_deadline() == [ev.SendPing(0)]
    silent = s.core.clone()
    assert s(ev.Pong(40.1, 0)) == []
    assert s.core.children[0].deadline == 140.1
    # Without the pong, the next wake-up after the heartbeat at 80 is the kill at 100.2.
    silent.handle(ev.DeadlineReached(80.0))
    assert silent.next_deadline() == 100.2
    assert s.at_deadline() == [ev.SendPing(0)]
    assert s.now == 80.0
    assert s.at_deadline() == [ev.SendPing(0)]
    assert s.now == 120.0
    # Between heartbeats the earliest deadline is the child's renewed one.
    assert s.core.next_deadline() == 140.1
    # No pong since 40.1: killed at 140.1, not at 100.2.
    assert s.at_deadline() == [ev.Kill(0, Has("ping_timeout")), ev.ReportAvailability(False, ANY)]
    assert s.now == 140.1


def test_hang_while_dispatched_is_an_ack_timeout_the_job_is_requeued() -> None:
    s = at_dispatched()
    assert s.core.next_deadline() == 0.3 + 5.0
    assert s.at_deadline() == [ev.Kill(0, "sent no ack for job 1 within ack_timeout=5s")]
    # Not requeued yet: an ack may be in flight until the killed child's stream ends.
    assert view(s.core) == state("running", {"failed": 1}, {"unacked": 1},
                                 available=False, budget=2)
    # The killed child is reaped with no ack: requeued, and it runs on the replacement.
    assert s(ev.ChildExited(5.4, 0, -9)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, budget=2)
    assert s.core.jobs[1].deadline == 0.3 + 20.0  # its queue budget counts from submission
    assert s.warm(1, 5.5) == [ev.SendInit(1), ev.SendJob(1, 1)]
    s(ev.JobAck(5.6, 1, 1))
    assert s(ev.JobDone(5.7, 1, 1, 42))[0] == settle(1, "done", value=42)


def test_hang_while_running_cancels_at_job_timeout_then_kills_at_close_timeout() -> None:
    s = at_running()
    assert s.core.next_deadline() == 0.4 + 10.0
    assert s.at_deadline() == [ev.SendCancel(0, 1)]
    assert view(s.core) == state("running", {"stopping": 1}, {"cancelling": 1}, available=False)
    assert s.core.next_deadline() == 10.4 + 3.0
    # The child neither acks the cancel nor exits: both deadlines are close_timeout.
    assert s.at_deadline() == [
        ev.Kill(0, "cancelling job 1; then did not stop within close_timeout=3s"),
        settle(1, "cancelled", JobTimeout,
               "job 1 ran past its timeout of 10s and was cancelled; its child was killed"),
    ]
    # The kill is ours (a cancel), not a failure: the budget is intact.
    assert view(s.core) == state("running", {"failed": 1}, available=False)
    assert s.at_deadline() == [ev.SpawnChild(1), ev.ReportAvailability(True, Has("warming"))]
    assert s.now == 13.4 + 4.0
    assert view(s.core) == state("running", {"spawned": 1}, available=True)


def test_hang_while_running_a_long_job_is_a_ping_timeout() -> None:
    s = at_ready()
    s(ev.Submit(0.3, 1, timeout=1000.0))
    s(ev.JobAck(0.4, 0, 1))
    assert s.at_deadline() == [ev.SendPing(0)]
    assert s(ev.Pong(40.5, 0)) == []  # a pong while busy renews too
    assert s.core.children[0].deadline == 140.5
    assert s.until(140.4) == [ev.SendPing(0), ev.SendPing(0)]
    assert view(s.core) == state("running", {"busy": 1}, {"running": 1}, available=False)
    assert s.until(140.5) == [ev.Kill(0, "answered no ping within ping_timeout=100s")]
    # Killed, not yet reaped: the job waits for the reap (or the abandon).
    assert view(s.core) == state("running", {"failed": 1}, {"running": 1}, available=False,
                                 budget=2)
    assert s(ev.ChildExited(141.0, 0, -9)) == [
        settle(1, "failed", ChildDied,
               "job 1: child 0 (pid 100) answered no ping within ping_timeout=100s"),
        ev.SpawnChild(1),
    ]
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)


def test_hang_while_stopping_is_killed_at_close_timeout_then_abandoned() -> None:
    s = at_stopping()
    assert s.core.next_deadline() == 0.5 + 3.0
    assert s.at_deadline() == [
        ev.Kill(0, "recycled after 1 jobs; then did not stop within close_timeout=3s"),
    ]
    # A stop that ends in a kill is still ours: no failure counted.
    assert view(s.core) == state("running", {"failed": 1}, available=False, config=RECYCLE)
    assert s.at_deadline() == [
        ev.SpawnChild(1),
        ev.ReportAvailability(True, "a child is warming or can be spawned"),
    ]
    assert s.now == 3.5 + 4.0
    assert view(s.core) == state("running", {"spawned": 1}, available=True, config=RECYCLE)


def test_hang_while_failed_is_abandoned_and_a_late_reap_is_ignored() -> None:
    s = at_failed()
    assert s.core.next_deadline() == 0.3 + 4.0
    assert s.at_deadline() == [ev.SpawnChild(1)]
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)
    # The abandoned process is reaped after all: it no longer counts.
    assert s(ev.ChildExited(5.0, 0, -9)) == []
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)


def test_abandoning_the_child_of_a_running_job_fails_the_job() -> None:
    s = at_running()
    s(ev.BadMessage(0.5, 0, "garbage"))
    assert s.at_deadline() == [
        settle(1, "failed", ChildDied, "job 1: child 0 (pid 100) bad message: garbage"),
        ev.SpawnChild(1),
    ]
    assert s.now == 0.5 + 4.0
    assert view(s.core) == state("running", {"spawned": 1}, available=False, budget=2)


# --- init error -----------------------------------------------------------------------


def test_init_error_while_warming_kills_and_replaces() -> None:
    s = at_warming()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.InitError(0.5, 0, "ImportError: numpy")) == [
        ev.Kill(0, "initializer failed: ImportError: numpy"),
    ]
    assert reason(s) == LAST_FAILED + "child 0: initializer failed: ImportError: numpy"
    assert view(s.core) == state("starting", {"failed": 1}, available=False, budget=2)
    assert s(ev.ChildExited(0.6, 0, 1)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)


def test_init_error_while_spawned_breaks_the_protocol() -> None:
    s = at_spawned()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.InitError(0.5, 0, "boom")) == [
        ev.Kill(0, "protocol violation: init error while spawned"),
    ]
    assert reason(s) == LAST_FAILED + "child 0: protocol violation: init error while spawned"
    assert view(s.core) == state("starting", {"failed": 1}, available=False, budget=2)


def test_init_error_while_ready_breaks_the_protocol() -> None:
    s = at_ready()
    assert s(ev.InitError(0.5, 0, "boom")) == [
        ev.Kill(0, "protocol violation: init error while ready"),
        ev.ReportAvailability(False, Has("protocol violation")),
    ]
    assert view(s.core) == state("running", {"failed": 1}, available=False, budget=2)


def test_init_error_while_busy_kills_and_the_running_job_dies_with_it() -> None:
    s = at_running()
    assert s(ev.InitError(0.5, 0, "boom")) == [
        ev.Kill(0, "protocol violation: init error while busy"),
    ]
    assert view(s.core) == state("running", {"failed": 1}, {"running": 1}, available=False,
                                 budget=2)
    assert s(ev.ChildExited(0.6, 0, -9)) == [
        settle(1, "failed", ChildDied, "protocol violation: init error while busy"),
        ev.SpawnChild(1),
    ]


def test_init_error_while_busy_with_a_dispatched_job_requeues_it() -> None:
    s = at_dispatched()
    assert s(ev.InitError(0.5, 0, "boom")) == [
        ev.Kill(0, "protocol violation: init error while busy"),
    ]
    assert view(s.core) == state("running", {"failed": 1}, {"dispatched": 1}, available=False,
                                 budget=2)
    assert s(ev.ChildExited(0.6, 0, -9)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, budget=2)


def test_init_error_while_stopping_or_failed_is_stale_and_ignored() -> None:
    s = at_stopping()
    assert s(ev.InitError(0.6, 0, "boom")) == []
    assert view(s.core) == state("running", {"stopping": 1}, available=False, config=RECYCLE)
    s = at_failed()
    assert s(ev.InitError(0.6, 0, "boom")) == []
    assert view(s.core) == state("running", {"failed": 1}, available=False, budget=2)


# --- bad message ----------------------------------------------------------------------


def test_bad_message_while_spawned() -> None:
    s = at_spawned()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.BadMessage(0.5, 0, "not msgpack")) == [ev.Kill(0, "bad message: not msgpack")]
    assert reason(s) == LAST_FAILED + "child 0: bad message: not msgpack"
    assert view(s.core) == state("starting", {"failed": 1}, available=False, budget=2)


def test_bad_message_while_warming() -> None:
    s = at_warming()
    # Unavailable already (no child was ever ready): nothing to report.
    assert s(ev.BadMessage(0.5, 0, "oversized")) == [ev.Kill(0, "bad message: oversized")]
    assert reason(s) == LAST_FAILED + "child 0: bad message: oversized"
    assert view(s.core) == state("starting", {"failed": 1}, available=False, budget=2)


def test_bad_message_while_dispatched_requeues_the_job_after_the_reap() -> None:
    s = at_dispatched()
    assert s(ev.BadMessage(0.5, 0, "x")) == [ev.Kill(0, "bad message: x")]
    assert view(s.core) == state("running", {"failed": 1}, {"dispatched": 1}, available=False,
                                 budget=2)
    assert s(ev.ChildExited(0.6, 0, -9)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, budget=2)


def test_bad_message_while_running_fails_the_job_after_the_reap() -> None:
    s = at_running()
    assert s(ev.BadMessage(0.5, 0, "x")) == [ev.Kill(0, "bad message: x")]
    assert view(s.core) == state("running", {"failed": 1}, {"running": 1}, available=False,
                                 budget=2)
    assert s(ev.ChildExited(0.6, 0, -9)) == [
        settle(1, "failed", ChildDied, "job 1: child 0 (pid 100) bad message: x"),
        ev.SpawnChild(1),
    ]


def test_bad_message_while_stopping_kills_without_counting_a_failure() -> None:
    s = at_stopping()
    assert s(ev.BadMessage(0.6, 0, "x")) == [
        ev.Kill(0, "recycled after 1 jobs; then bad message: x"),
    ]
    assert view(s.core) == state("running", {"failed": 1}, available=False, config=RECYCLE)


def test_bad_message_while_failed_is_ignored() -> None:
    s = at_failed()
    assert s(ev.BadMessage(0.6, 0, "more garbage")) == []
    assert view(s.core) == state("running", {"failed": 1}, available=False, budget=2)
    assert s.core.children[0].reason == "bad message: garbage"
