"""Faults in the core that the checker alone must catch (issue 14's three classes).

Each test plants one fault into the real ``SupervisorCore`` and asserts that
exploring wayout's models reports the property it breaks. Before the checker
kept time, obeyed commands and asked for recovery from back-off, each of
these explored a graph with no violation at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fsm.core as core_module
from fsm import events as ev
from fsm.core import SupervisorCore
from models.explorer import explore
from models.wayout import WayoutDesign, WayoutServing


@pytest.fixture
def plant(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Any], None]]:
    def put(name: str, fn: Any) -> None:
        monkeypatch.setattr(SupervisorCore, name, fn)
        for event, handler in list(core_module._HANDLERS.items()):
            if handler.__name__ == name:
                monkeypatch.setitem(core_module._HANDLERS, event, fn)
    yield put


def found(design: WayoutDesign) -> tuple[list[str], str]:
    result = explore(design)
    return sorted(result.found), result.violations[0].message if result.violations else ""


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
    props, message = found(design(jobs=1))
    assert props == ["safety"]
    assert "still runs, but the core forgot it without killing it" in message


@pytest.mark.parametrize("design", [WayoutDesign, WayoutServing])
def test_a_back_off_timer_that_re_enters_back_off_never_recovers(
        plant: Callable[[str, Any], None], design: type[WayoutDesign]) -> None:
    pool_timeout = SupervisorCore._pool_timeout

    def again(self: SupervisorCore) -> None:
        if self.pool.state == "backing_off":
            self.pool.deadline = self.now + self._backoff_delay()
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
    heartbeat = SupervisorCore._heartbeat

    def silent(self: SupervisorCore) -> None:
        start = len(self._out)
        heartbeat(self)
        self._out[start:] = [c for c in self._out[start:] if not isinstance(c, ev.SendPing)]

    plant("_heartbeat", silent)
    props, message = found(WayoutServing(jobs=1))
    assert props == ["safety"]
    assert "killed for ping_timeout, but it had answered every ping" in message


def test_a_pong_that_does_not_renew_the_deadline_blames_healthy_children(
        plant: Callable[[str, Any], None]) -> None:
    on_pong = SupervisorCore._on_pong

    def not_renewing(self: SupervisorCore, e: ev.Pong) -> None:
        child = self.children.get(e.child)
        deadline = None if child is None else child.deadline
        on_pong(self, e)
        if child is not None:
            child.deadline = deadline

    plant("_on_pong", not_renewing)
    props, message = found(WayoutServing(jobs=1))
    assert props == ["safety"]
    assert "killed for ping_timeout, but it had answered every ping" in message
