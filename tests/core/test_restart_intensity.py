"""Restart intensity and back-off: failures cannot spin the pool in a hot loop."""

from __future__ import annotations

from fsm import events as ev
from fsm.errors import NoCapacity

from .script import Script, cfg, settle, state, view

# One child at a time: each failure shows as exactly one replacement.
SOLO = cfg(max_children=1, max_restarts=3, restart_window=60.0, backoff_initial=1.0,
           backoff_max=8.0)


def fail_current_spawn(s: Script) -> list[ev.Command]:
    """The only child's process could not be started."""
    (child,) = s.core.children
    return s(ev.ChildExited(s.now, child, None))


def back_off(s: Script) -> None:
    """Fail max_restarts + 1 spawns in a row, at the current time."""
    for _ in range(3):
        assert [type(c) for c in fail_current_spawn(s) if not isinstance(
            c, ev.ReportAvailability)] == [ev.SpawnChild]
    # The fourth failure in the window is one too many: no respawn.
    out = fail_current_spawn(s)
    assert [c for c in out if isinstance(c, ev.SpawnChild)] == []
    assert s.core.pool_state == "backing_off"


def test_more_than_max_restarts_failures_in_the_window_backs_off() -> None:
    s = Script(SOLO)
    # Unavailable already (no child was ever ready): nothing to report.
    assert fail_current_spawn(s) == [ev.SpawnChild(1)]
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=2,
                                 config=SOLO)
    assert s.core.status().reason == (
        "no ready child, and the last child failed: child 0: could not be started while spawned")
    assert fail_current_spawn(s) == [ev.SpawnChild(2)]
    assert fail_current_spawn(s) == [ev.SpawnChild(3)]
    assert view(s.core) == state("starting", {"spawned": 1}, available=False, budget=0,
                                 config=SOLO)
    assert fail_current_spawn(s) == []
    assert view(s.core) == state("backing_off", available=False, budget=0, backoff=1,
                                 config=SOLO)
    assert s.core.status().reason == (
        "backing off after 4 failures within restart_window; "
        "last: child 3: could not be started while spawned"
    )
    assert s.core.pool.deadline == 0.0 + 1.0
    assert s.of(ev.Log)[-1] == ev.Log(
        "warning", "4 child failures within restart_window=60s (max_restarts=3); backing off "
        "1s; last: child 3: could not be started while spawned")
    # During the back-off nothing spawns, whatever happens.
    assert s(ev.Submit(0.5, 1)) == []
    assert s(ev.DeadlineReached(0.9)) == []
    # Then the pool runs again with a fresh budget and spawns.
    assert s.at_deadline() == [ev.SpawnChild(4)]
    assert s.now == 1.0
    assert view(s.core) == state("running", {"spawned": 1}, {"queued": 1}, queued=1,
                                 available=False, backoff=1, config=SOLO)


def test_back_off_delay_doubles_up_to_backoff_max_and_resets_once_a_child_is_ready() -> None:
    s = Script(SOLO)
    delays = []
    levels = []
    for _ in range(5):
        started = s.now
        back_off(s)
        delays.append(s.core.pool.deadline - started)  # type: ignore[operator]
        levels.append(s.core.status().backoff_level)
        s.at_deadline()
        assert s.core.pool_state == "running"
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    # The level stops counting where the delay reaches backoff_max (8 = 1 * 2**3).
    assert levels == [1, 2, 3, 4, 4]
    assert s.core.status().backoff_level == 4
    # A child that becomes ready proves spawning works: the back-off starts over.
    (child,) = s.core.children
    assert s.warm(child) == [
        ev.SendInit(child),
        ev.ReportAvailability(True, "a ready child is idle"),
    ]
    assert view(s.core) == state("running", {"ready": 1}, available=True, config=SOLO)
    s(ev.BadMessage(s.now, child, "x"))
    s(ev.ChildExited(s.now, child, -9))
    started = s.now
    back_off_after_one = 3  # one failure already counted
    for _ in range(back_off_after_one):
        fail_current_spawn(s)
    assert s.core.pool_state == "backing_off"
    assert s.core.pool.deadline == started + 1.0


def window_case(fourth_at: float) -> Script:
    # A long spawn_timeout: only the scripted failures happen.
    s = Script(cfg(max_children=1, max_restarts=3, restart_window=60.0, spawn_timeout=500.0,
                   start_timeout=500.0))
    for _ in range(3):
        fail_current_spawn(s)
    assert s.core.status().restart_budget == 0
    s(ev.DeadlineReached(fourth_at))
    fail_current_spawn(s)
    return s


def test_a_fourth_failure_inside_the_window_backs_off() -> None:
    s = window_case(59.5)
    assert s.core.pool_state == "backing_off"
    assert s.core.status().restart_budget == 0


def test_failures_that_left_the_window_do_not_count() -> None:
    s = window_case(60.5)
    assert s.core.pool_state == "starting"
    assert s.core.status().restart_budget == 2
    assert s.core.children[4].state == "spawned"


def test_queued_jobs_keep_their_deadlines_during_back_off_and_get_no_capacity() -> None:
    s = Script(SOLO)
    s(ev.Submit(0.0, 1))
    s(ev.Submit(5.0, 2))
    s(ev.DeadlineReached(5.0))
    # Failures keep coming: each back-off ends in a new one.
    while s.core.jobs:
        while s.core.pool_state != "backing_off" and s.core.children:
            fail_current_spawn(s)
        s.at_deadline()
    assert s.outcomes == {
        1: settle(1, "failed", NoCapacity, "job 1 waited queue_timeout=20s").outcome,
        2: settle(2, "failed", NoCapacity, "job 2 waited queue_timeout=20s").outcome,
    }
    settled_at = [c.now for c in s.of(ev.Transitioned)
                  if c.kind == "job" and c.dest == "failed"]
    assert settled_at == [20.0, 25.0]
    # The NoCapacity message says why no child could take it.
    assert s.outcomes[1].message.endswith(
        "raise max_children or queue_timeout, or find why children fail")


def test_spawns_per_unit_of_time_are_bounded_when_every_spawn_fails() -> None:
    s = Script(SOLO)
    while s.now < 120.0:
        if s.core.children and s.core.pool_state != "backing_off":
            fail_current_spawn(s)
        else:
            s.at_deadline()
    spawns = len(s.of(ev.SpawnChild))
    # Four spawns per back-off; back-offs of 1, 2, 4 then 8 s: about 4 per 8 s.
    assert spawns <= 4 * (4 + 120 // 8) + 1
    assert spawns >= 4 * 4


def test_draining_respawns_within_restart_intensity() -> None:
    config = cfg(max_children=1)  # max_restarts=3
    s = Script(config, hot_loop=False)
    s(ev.Submit(0.0, 1))
    s(ev.Drain(0.0))
    # Every spawn fails at once, at the same instant.
    for _ in range(50):
        if not s.core.children:
            break
        fail_current_spawn(s)
    assert len(s.of(ev.SpawnChild)) <= config.max_restarts + 1
    # The job still gets its outcome at its own deadline, and the pool closes.
    s.until(30.0)
    assert s.outcomes == {
        1: settle(1, "failed", NoCapacity, "job 1 waited queue_timeout=20s").outcome}
    assert s.core.pool_state == "closed"
