"""Faults in the core that the checker alone must catch (issue 14's three classes).

Each test plants one fault into the real ``SupervisorCore`` and asserts that
exploring wayout's models reports the property it breaks. Before the checker
kept time, obeyed commands and asked for recovery from back-off, each of
these explored a graph with no violation at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from fsm import events as ev
from fsm.core import SupervisorCore
from models.explorer import explore
from models.orderings import orderings_model
from models.report import format_violation
from models.wayout import WayoutDesign, WayoutServing, World


def found(design: WayoutDesign) -> tuple[list[str], str]:
    result = explore(design)
    return sorted(result.found), result.violations[0].message if result.violations else ""


def caught(design: WayoutDesign, needle: str) -> None:
    """The design breaks safety, and only safety, with ``needle`` in its first
    violation (in full: every invariant its state breaks)."""
    props, message = found_all(design)
    assert props == ["safety"], message
    assert needle in message, message


def found_all(design: WayoutDesign) -> tuple[list[str], str]:
    """The properties broken, and the first violation in full (every invariant its
    state breaks: one fault may break two at once)."""
    result = explore(design)
    v = result.violations[0] if result.violations else None
    return sorted(result.found), "" if v is None else format_violation(v)


@pytest.mark.parametrize("design", [WayoutDesign, WayoutServing])
def test_a_pong_that_renews_the_running_jobs_deadline_breaks_bounded_settlement(
        plant: Callable[[str, Any], None], design: type[WayoutDesign]) -> None:
    on_pong = SupervisorCore._on_pong

    def renewing(self: SupervisorCore, e: ev.Pong) -> None:
        on_pong(self, e)
        child = self.children.get(e.child)
        job = None if child is None or child.job is None else self.jobs.get(child.job)
        if job is not None and job.state == "running":
            job.deadline = self.now + job.timeout
            self._push(job)  # the deadline heap learns every deadline the core sets

    plant("_on_pong", renewing)
    props, message = found(design(jobs=1))
    assert props == ["safety"]
    assert "past its bound" in message and "job_bound" in message


@pytest.mark.parametrize("design", [WayoutDesign, WayoutServing])
def test_an_initialize_timeout_without_a_kill_leaves_a_process_running(
        plant: Callable[[str, Any], None], design: type[WayoutDesign]) -> None:
    child_timeout = SupervisorCore._child_timeout

    def no_kill(self: SupervisorCore, child: Any) -> None:
        if child.state != "warming":
            child_timeout(self, child)
            return
        self._record_failure(child)
        self._fire(child, "timeout")  # failed, but no Kill command

    plant("_child_timeout", no_kill)
    # restarts=3: the core's failure count (the world saw no failure: no kill,
    # no exit) must not back the pool off before the forgotten process shows.
    caught(design(jobs=1, restarts=3), "still runs, but the core forgot it without killing it")


@pytest.mark.parametrize("design", [WayoutDesign, WayoutServing])
def test_a_back_off_timer_that_re_enters_back_off_never_recovers(
        plant: Callable[[str, Any], None], design: type[WayoutDesign]) -> None:
    pool_timeout = SupervisorCore._pool_timeout

    def again(self: SupervisorCore) -> None:
        if self.pool.state == "backing_off":
            self.pool.deadline = self.now + self._backoff_delay()
            self._push(self.pool)
            return
        pool_timeout(self)

    plant("_pool_timeout", again)
    props, _ = found(design(jobs=1))
    assert "backoff_ends" in props


def test_the_correct_core_passes_the_same_small_models() -> None:
    for design in (WayoutDesign(jobs=1), WayoutServing(jobs=1)):
        result = explore(design)
        assert result.as_expected, [v.message for v in result.violations]


def test_a_heartbeat_that_sends_no_ping_blames_healthy_children(
        plant: Callable[[str, Any], None]) -> None:
    plant("_heartbeat", dropping(SupervisorCore._heartbeat, ev.SendPing))
    caught(WayoutServing(jobs=1), "killed for ping_timeout, but it had answered every ping")


def test_a_pong_that_does_not_renew_the_deadline_blames_healthy_children(
        plant: Callable[[str, Any], None]) -> None:
    on_pong = SupervisorCore._on_pong

    def not_renewing(self: SupervisorCore, e: ev.Pong) -> None:
        child = self.children.get(e.child)
        deadline = None if child is None else child.deadline
        on_pong(self, e)
        if child is not None:
            child.deadline = deadline
            self._push(child)

    plant("_on_pong", not_renewing)
    caught(WayoutServing(jobs=1), "killed for ping_timeout, but it had answered every ping")


# --- the world obeys commands: a child is blamed only for a question it was asked ---


def dropping(method: Any, *kinds: type[ev.Command]) -> Any:
    """``method`` with the commands of ``kinds`` it emits dropped (a core that forgets to send)."""

    def dropped(self: SupervisorCore, *args: Any) -> Any:
        start = len(self._out)
        result = method(self, *args)
        self._out[start:] = [c for c in self._out[start:] if not isinstance(c, kinds)]
        return result

    dropped.__name__ = method.__name__
    return dropped


@pytest.mark.parametrize(("name", "kinds", "design", "blame"), [
    # Dispatch that never sends the job: the child is killed for an ack it never owed.
    ("_reconcile", (ev.SendJob,), WayoutServing, "killed for ack_timeout, but it owed no ack"),
    # A cancel never sent: the child, never asked to stop, exits (in the world's
    # count a crash: spawning no longer proven, yet the pool says available) or
    # is killed for not stopping.
    ("_begin_cancel", (ev.SendCancel,), WayoutServing,
     "killed for close_timeout, but it was never asked to stop|no child has become ready "
     "since the last failure, but it reports available"),
    # Closing that tells no child to stop: each is killed at close_timeout.
    ("_enter_closing", (ev.SendStop, ev.SendCancel), WayoutDesign,
     "killed for close_timeout, but it was never asked to stop"),
    # A child recorded but its process never asked for: killed for not starting.
    ("_spawn", (ev.SpawnChild,), WayoutServing,
     "killed for spawn_timeout, but it was not starting"),
])
def test_a_command_the_core_does_not_send_is_not_answered(
        plant: Callable[[str, Any], None], name: str, kinds: tuple[type[ev.Command], ...],
        design: type[WayoutDesign], blame: str) -> None:
    plant(name, dropping(getattr(SupervisorCore, name), *kinds))
    props, message = found_all(design(jobs=1))
    assert props == ["safety"]
    assert any(b in message for b in blame.split("|")), message


def test_a_legal_message_taken_as_a_protocol_violation_blames_a_healthy_child(
        plant: Callable[[str, Any], None]) -> None:
    on_pong = SupervisorCore._on_pong

    def busy_pong_is_a_violation(self: SupervisorCore, e: ev.Pong) -> None:
        child = self.children.get(e.child)
        if child is not None and child.state == "busy":
            self._kill(child, "pong while busy", failure=True, cause="protocol")
            return
        on_pong(self, e)

    plant("_on_pong", busy_pong_is_a_violation)
    caught(WayoutServing(jobs=1), "killed for protocol, but it sent only what it was asked for")


# --- availability as reported (ReportAvailability), in both directions ---------------


def test_availability_never_reported_is_caught(plant: Callable[[str, Any], None]) -> None:
    plant("_reconcile", dropping(SupervisorCore._reconcile, ev.ReportAvailability))
    caught(WayoutServing(jobs=1), "with an idle ready child, but it reports nothing")


def test_a_pool_with_a_ready_child_that_says_unavailable_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    availability = SupervisorCore._availability

    def shy(self: SupervisorCore) -> tuple[bool, str]:
        available, reason = availability(self)
        if any(c.state == "ready" for c in self.children.values()):
            return False, reason
        return available, reason

    plant("_availability", shy)
    caught(WayoutServing(jobs=1), "with an idle ready child, but it reports unavailable")


# --- restart intensity and back-off, in the world's own count ------------------------


class _OtherSettings(WayoutServing):
    """The world judges by its config; the core runs with ``core_settings`` changed."""

    core_settings: dict[str, Any] = {}

    def initial(self) -> World:
        config = replace(self.config, **self.core_settings)
        return self.apply(World(SupervisorCore(config, now=0.0), (), None),
                          ev.Start(now=0.0)).state


class _EarlyBackOff(_OtherSettings):
    core_settings = {"max_restarts": 0}  # backs off at max_restarts failures, one early


class _NoDoubling(_OtherSettings):
    core_settings = {"backoff_max": 1.0}  # the delay never grows past backoff_initial


def test_a_pool_that_backs_off_one_failure_early_is_caught() -> None:
    caught(_EarlyBackOff(jobs=1), "backed off after 1 failures within restart_window")


def test_a_back_off_delay_that_never_doubles_is_caught() -> None:
    caught(_NoDoubling(jobs=1), "back-off 2 in a row lasts 1.0s")


def test_a_back_off_that_keeps_its_failures_backs_off_again_at_once(
        plant: Callable[[str, Any], None]) -> None:
    pool_timeout = SupervisorCore._pool_timeout

    def keeping(self: SupervisorCore) -> None:
        kept = list(self.failures)
        pool_timeout(self)
        self.failures[:] = kept

    plant("_pool_timeout", keeping)
    caught(WayoutServing(jobs=1), "backed off after 0 failures")


def test_a_ready_child_that_does_not_reset_the_back_off_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    on_ready = SupervisorCore._on_ready

    def remembering(self: SupervisorCore, e: ev.Ready) -> None:
        level = self.backoff_level
        on_ready(self, e)
        self.backoff_level = level

    plant("_on_ready", remembering)
    caught(WayoutServing(jobs=1), "back-off 1 in a row lasts 2.0s")


def test_failures_the_core_does_not_count_leave_the_pool_running(
        plant: Callable[[str, Any], None]) -> None:
    record_failure = SupervisorCore._record_failure

    def forgetful(self: SupervisorCore, child: Any) -> None:
        record_failure(self, child)
        self.failures.pop()

    plant("_record_failure", forgetful)
    props, message = found_all(WayoutServing(jobs=1))
    assert props == ["safety"]
    assert "2 failures within restart_window" in message and "but the pool is still" in message


def test_a_pool_that_stops_spawning_before_its_intensity_is_exceeded_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    spawn = SupervisorCore._spawn

    def timid(self: SupervisorCore) -> None:
        if len(self.failures) >= self.config.max_restarts:
            return
        spawn(self)

    plant("_spawn", timid)
    caught(WayoutServing(jobs=1), "it should start more")


# --- the user's calls keep their promises: cancel, drain, close -------------------


def test_a_cancel_of_a_job_on_its_way_to_a_child_is_bounded(
        plant: Callable[[str, Any], None]) -> None:
    on_cancel = SupervisorCore._on_cancel

    def deaf(self: SupervisorCore, e: ev.Cancel) -> None:
        job = self.jobs.get(e.job)
        if job is not None and job.state in ("dispatched", "unacked"):
            return  # dropped: the job runs to its end
        on_cancel(self, e)

    plant("_on_cancel", deaf)
    caught(WayoutServing(jobs=1), "after cancel(), past close_timeout")


def test_a_drain_that_aborts_its_running_jobs_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    def hasty(self: SupervisorCore, e: ev.Drain) -> None:
        if self.pool.state in ("starting", "running", "backing_off"):
            self._fire(self.pool, "drain")
            self._fire(self.pool, "drained")
            self._enter_closing()

    plant("_on_drain", hasty)
    caught(WayoutDesign(jobs=1),
           "accepted before drain() but failed PoolClosed before drain_timeout")


def test_a_close_ignored_during_a_drain_is_caught(plant: Callable[[str, Any], None]) -> None:
    on_close = SupervisorCore._on_close

    def later(self: SupervisorCore, e: ev.Close) -> None:
        if self.pool.state != "draining":
            on_close(self, e)

    plant("_on_close", later)
    caught(WayoutDesign(jobs=1),
           "after close() or the drain's end, past close_timeout + kill_timeout")


def test_a_draining_pool_that_dispatches_nothing_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    reconcile = SupervisorCore._reconcile

    def idle(self: SupervisorCore) -> None:
        if self.pool.state != "draining":
            reconcile(self)
            return
        held = self.queue
        self.queue = type(held)()
        reconcile(self)
        held.extend(self.queue)
        self.queue = held

    plant("_reconcile", idle)
    caught(WayoutDesign(jobs=1), "waits in the queue while a ready child is idle")


def test_availability_claimed_on_a_spawn_that_no_longer_works_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    record_failure = SupervisorCore._record_failure

    def hopeful(self: SupervisorCore, child: Any) -> None:
        proven = self.spawn_proven
        record_failure(self, child)
        self.spawn_proven = proven

    plant("_record_failure", hopeful)
    caught(WayoutServing(jobs=1),
           "no child has become ready since the last failure, but it reports available")


def test_a_pong_that_crossed_a_stop_must_not_break_the_core(
        plant: Callable[[str, Any], None]) -> None:
    def any_state(self: SupervisorCore, e: ev.Pong) -> None:
        child = self.children.get(e.child)
        if child is not None and child.state not in ("failed",):
            self._fire(child, "pong")  # the lifecycle takes no pong while stopping: raises

    plant("_on_pong", any_state)
    assert found(WayoutServing(jobs=1)) == ([], "")  # the default world reduces it away
    caught(WayoutServing(jobs=1, stale_pongs=True), "the core raised")


def test_a_core_that_would_sleep_past_a_jobs_deadline_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    # The catalogue's wake-ignores-jobs, planted: next_deadline() leaves out the
    # jobs' deadlines, so the runtime's one timer wakes the core late for them
    # (only the heartbeat, ping_interval later, would fire a job's timeout).
    def without_jobs(self: SupervisorCore) -> float | None:
        times = [c.deadline for c in self.children.values() if c.deadline is not None]
        times += [t for t in (self.pool.deadline, self.heartbeat_at) if t is not None]
        return min(times, default=None)

    plant("next_deadline", without_jobs)
    # Under model_config every duration is a multiple of ping_interval, so the
    # heartbeat is never later than a job's deadline: the orderings show it.
    caught(orderings_model(WayoutServing, 1, 1, 1, "orderings", ""), "it would sleep past it")


def test_a_job_sent_to_a_child_the_core_killed_is_caught(
        plant: Callable[[str, Any], None]) -> None:
    # The catalogue's ready-timeout-stays-ready, planted in the core: a ready
    # child that answers no ping is killed, but kept ready (and re-armed), so
    # it is given the next job while its kill is under way.
    child_timeout = SupervisorCore._child_timeout

    def kept_ready(self: SupervisorCore, child: Any) -> None:
        was = child.state
        child_timeout(self, child)
        if was == "ready" and child.ident in self.children:
            child.state = "ready"
            self._arm(child)

    plant("_child_timeout", kept_ready)
    caught(WayoutServing(jobs=1), "which the core had already killed")
