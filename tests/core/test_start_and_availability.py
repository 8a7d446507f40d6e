"""Start-up and availability: what the pool promises before and while it serves."""

from __future__ import annotations

from fsm import events as ev
from fsm.errors import NoCapacity

from .script import ANY, Script, cfg, settle, state, view


def test_start_spawns_num_idle_children_and_runs_once_they_are_ready() -> None:
    s = Script(cfg(num_idle=2), start=False)
    # No child has become ready yet: a job could not count on spawning working.
    assert view(s.core) == state("starting", available=False)
    assert s(ev.Start(0.0)) == [
        ev.SpawnChild(0),
        ev.SpawnChild(1),
        ev.ReportAvailability(False, "no ready child, and no child has become ready yet"),
    ]
    assert view(s.core) == state("starting", {"spawned": 2}, available=False)
    # The spawn deadlines are armed from SpawnChild, before any pid is known.
    assert s.core.next_deadline() == 1.0
    assert s(ev.Spawned(0.1, 0, 100)) == []
    assert s(ev.Hello(0.2, 0)) == [ev.SendInit(0)]
    assert s(ev.Spawned(0.2, 1, 101)) == []
    assert s(ev.Hello(0.3, 1)) == [ev.SendInit(1)]
    assert view(s.core) == state("starting", {"warming": 2}, available=False)
    assert s.core.next_deadline() == 0.2 + 2.0  # initialize_timeout of child 0
    assert s(ev.Ready(0.5, 0)) == [ev.ReportAvailability(True, "a ready child is idle")]
    # One of two ready: still starting (but available: a child is idle).
    assert view(s.core) == state("starting", {"ready": 1, "warming": 1}, available=True)
    assert s.core.status().reason == "a ready child is idle"
    assert s(ev.Ready(0.6, 1), keep=(ev.Transitioned,)) == [
        ev.Transitioned("child", 1, "warming", "warmed", "ready", 0.6),
        ev.Transitioned("pool", 0, "starting", "warm", "running", 0.6),
    ]
    assert view(s.core) == state("running", {"ready": 2}, available=True)
    # The running pool's own deadline is the heartbeat (ping_interval after Start).
    assert s.core.pool.deadline == 40.0
    assert s.core.next_deadline() == 40.0


def test_start_timeout_lets_the_pool_run_without_its_warm_target() -> None:
    # An initializer slower than start_timeout: entering the pool must not hang on it.
    config = cfg(initialize_timeout=50.0)
    s = Script(config)
    assert s.feed(ev.Spawned(0.1, 0, 100), ev.Hello(0.1, 0)) == [ev.SendInit(0)]
    assert s.core.next_deadline() == 30.0
    assert s.at_deadline() == []
    assert s.now == 30.0
    assert s.of(ev.Log)[-1] == ev.Log(
        "warning", "pool started without 1 ready children within start_timeout=30s")
    # Running but not warm, and not available: no child has become ready yet,
    # so a job could not count on the one that warms.
    assert view(s.core) == state("running", {"warming": 1}, available=False, config=config)
    assert s.core.status().reason == "no ready child, and no child has become ready yet"
    assert s.core.pool.deadline == 40.0
    s.until(50.0)
    assert s.core.children[0].state == "warming"
    # Still unavailable (nothing to report), now naming the failure.
    assert s.until(50.1) == [
        ev.Kill(0, "did not finish its initializer within initialize_timeout=50s"),
        ev.SpawnChild(1),
    ]
    assert view(s.core) == state("running", {"failed": 1, "spawned": 1}, available=False,
                                 budget=2, config=config)
    assert s.core.status().reason == (
        "no ready child, and the last child failed: "
        "child 0: did not finish its initializer within initialize_timeout=50s"
    )


def test_start_with_num_idle_zero_runs_at_once_and_spawns_on_demand() -> None:
    s = Script(cfg(num_idle=0), start=False)
    # Running at once, but not available until a child has proven spawning works.
    assert s(ev.Start(0.0)) == [
        ev.ReportAvailability(False, "no ready child, and no child has become ready yet"),
    ]
    assert view(s.core) == state("running", available=False)
    assert s(ev.Submit(1.0, 5)) == [ev.SpawnChild(0)]
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False)
    # The child takes the job at once; spawning is proven, and there is room for more.
    assert s.warm(0, 1.5) == [
        ev.SendInit(0),
        ev.SendJob(0, 5),
        ev.ReportAvailability(True, "a child is warming or can be spawned"),
    ]
    assert s(ev.JobAck(1.6, 0, 5)) == []
    assert s(ev.JobDone(1.7, 0, 5, "ok")) == [settle(5, "done", value="ok")]
    # num_idle is 0: the idle child is kept (it is not surplus to max_children).
    assert view(s.core) == state("running", {"ready": 1}, available=True)


# --- availability ------------------------------------------------------------


def test_unavailable_before_the_first_ready_child_then_available_while_a_child_warms() -> None:
    s = Script(cfg(max_children=2))
    # Before any child is ready, spawning is not known to work: a warming child
    # is no promise.
    assert s.started == [
        ev.SpawnChild(0),
        ev.ReportAvailability(False, "no ready child, and no child has become ready yet"),
    ]
    assert s.feed(ev.Spawned(0.1, 0, 100), ev.Hello(0.1, 0)) == [ev.SendInit(0)]
    assert view(s.core) == state("starting", {"warming": 1}, available=False)
    assert s.core.status().reason == "no ready child, and no child has become ready yet"
    assert s(ev.Ready(0.2, 0)) == [ev.ReportAvailability(True, "a ready child is idle")]
    # Spawning is proven: with the only ready child busy and no room left, the
    # child that warms in its place keeps the pool available (nothing reported).
    assert s(ev.Submit(0.3, 1)) == [ev.SendJob(0, 1), ev.SpawnChild(1)]
    assert s.feed(ev.Spawned(0.4, 1, 101), ev.Hello(0.4, 1)) == [ev.SendInit(1)]
    assert view(s.core) == state("running", {"busy": 1, "warming": 1}, {"dispatched": 1},
                                 available=True)
    assert s.core.status().reason == "a child is warming or can be spawned"


def test_unavailable_after_a_failed_spawn_until_a_child_is_ready() -> None:
    s = Script()
    # The process could not be started at all: before any child was ready, the
    # pool stays unavailable (nothing to report), and the reason names the failure.
    assert s(ev.ChildExited(0.1, 0, None)) == [ev.SpawnChild(1)]
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2)
    assert s.core.status().reason == (
        "no ready child, and the last child failed: child 0: could not be started while spawned"
    )
    # The replacement says hello: still not proven.
    assert s.feed(ev.Spawned(0.2, 1, 101), ev.Hello(0.3, 1)) == [ev.SendInit(1)]
    assert not s.core.available
    # Ready: available, reported once.
    assert s(ev.Ready(0.4, 1)) == [ev.ReportAvailability(True, "a ready child is idle")]
    assert view(s.core) == state("running", {"ready": 1}, available=True, budget=2)
    # Once proven, a failed spawn withdraws the proof: with child 1 busy, the
    # spawned child 2 failing makes the pool unavailable at once, reported once.
    assert s(ev.Submit(0.5, 7)) == [ev.SendJob(1, 7), ev.SpawnChild(2)]
    assert s.core.status().reason == "a child is warming or can be spawned"
    assert s(ev.ChildExited(0.6, 2, None)) == [
        ev.SpawnChild(3),
        ev.ReportAvailability(False, "no ready child, and the last child failed: "
                                     "child 2: could not be started while spawned"),
    ]
    assert view(s.core) == state("running", {"busy": 1, "spawned": 1}, {"dispatched": 1},
                                 available=False, budget=1)
    assert s.feed(ev.Spawned(0.7, 3, 103), ev.Hello(0.7, 3)) == [ev.SendInit(3)]
    assert not s.core.available
    assert s(ev.Ready(0.8, 3)) == [ev.ReportAvailability(True, "a ready child is idle")]
    assert view(s.core) == state("running", {"busy": 1, "ready": 1}, {"dispatched": 1},
                                 available=True, budget=1)


def test_unavailable_when_every_child_is_busy_and_no_room_is_left() -> None:
    s = Script(cfg(max_children=1))
    s.warm(0, 0.1)
    assert s(ev.Submit(0.2, 1)) == [
        ev.SendJob(0, 1),
        ev.ReportAvailability(False, "all 1 children are busy or starting and 0 jobs are queued"),
    ]
    assert view(s.core) == state("running", {"busy": 1}, {"dispatched": 1}, available=False)
    s(ev.JobAck(0.3, 0, 1))
    assert s(ev.JobDone(0.4, 0, 1)) == [
        settle(1, "done"),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]


def test_availability_is_reported_only_when_it_changes() -> None:
    s = Script(cfg(max_children=2))
    s.warm(0, 0.1)
    # Dispatch to the only ready child; a second one can still be spawned.
    s.feed(ev.Submit(0.2, 1), ev.JobAck(0.2, 0, 1))
    s.feed(ev.JobDone(0.3, 0, 1), ev.Submit(0.4, 2), ev.JobAck(0.4, 0, 2))
    # Unavailable until child 0 was ready; then the busy child's warming
    # replacement keeps it available, so nothing more is reported.
    reports = s.of(ev.ReportAvailability)
    assert reports == [
        ev.ReportAvailability(False, "no ready child, and no child has become ready yet"),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]
    # Each change is reported exactly once, alternating.
    s(ev.Drain(0.5))
    s(ev.JobDone(0.6, 0, 2))
    assert s.of(ev.ReportAvailability) == [
        ev.ReportAvailability(False, ANY),
        ev.ReportAvailability(True, ANY),
        ev.ReportAvailability(False, "the pool is draining"),
    ]


def test_unavailable_while_backing_off_draining_and_closed() -> None:
    s = Script(cfg(max_restarts=0))
    # One failure is more than max_restarts=0: back off.
    s(ev.ChildExited(0.5, 0, 1))
    assert view(s.core) == state("backing_off", available=False, budget=0, backoff=1)
    assert s.core.status().reason.startswith("backing off after 1 failures")
    s(ev.Drain(0.6))
    assert view(s.core) == state("closed", available=False, budget=0, backoff=1)
    assert s.core.status().reason == "the pool is closed"


def test_queued_job_gets_no_capacity_naming_why() -> None:
    s = Script(cfg(num_idle=0, max_children=1))
    s(ev.Submit(0.0, 1))
    s(ev.ChildExited(0.5, 0, None))
    # Every later spawn fails too, until the queue deadline.
    while s.core.jobs:
        out = s.at_deadline()
        for c in out:
            if isinstance(c, ev.SpawnChild):
                s(ev.ChildExited(s.now, c.child, None))
    assert s.outcomes[1] == settle(1, "failed", NoCapacity, "queue_timeout=20s").outcome
    assert s.now == 20.0
