"""Errors the core raises: bad settings, submissions and events, each saying what to fix."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.core import SupervisorCore
from fsm.errors import ConfigError, WayoutError

from .script import Script


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_restarts": -1}, "PoolConfig.max_restarts must be an integer >= 0, got -1"),
        ({"restart_window": 0}, "PoolConfig.restart_window must be a finite number > 0, got 0"),
        ({"backoff_initial": math.inf},
         "PoolConfig.backoff_initial must be a finite number > 0, got inf"),
        ({"kill_timeout": -0.5}, "PoolConfig.kill_timeout must be a finite number > 0, got -0.5"),
        ({"max_jobs_per_child": 0}, "PoolConfig.max_jobs_per_child must be an integer >= 1, got 0"),
        ({"max_children": 0}, "PoolConfig.max_children must be an integer >= 1, got 0"),
        ({"num_idle": 3, "max_children": 2},
         "PoolConfig.num_idle=3 exceeds max_children=2: raise max_children or lower num_idle"),
        ({"ping_interval": 5.0, "ping_timeout": 5.0},
         "PoolConfig.ping_timeout=5.0 must exceed ping_interval=5.0, "
         "or every healthy child would be killed"),
        ({"backoff_initial": 4.0, "backoff_max": 2.0},
         "PoolConfig.backoff_max=2.0 is below backoff_initial=4.0"),
        ({"memory_limit_mb": -1.0},
         "PoolConfig.memory_limit_mb must be a finite number of megabytes > 0, got -1.0"),
    ],
)
def test_pool_config_names_the_field_and_the_value(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        PoolConfig(**settings)


@pytest.mark.parametrize("timeout", [0, 0.0, -1.0, math.inf, math.nan, True, "5"], ids=repr)
def test_submit_with_a_bad_timeout_is_refused_naming_the_job(timeout: Any) -> None:
    s = Script()
    before = s.core.clone()
    with pytest.raises(ConfigError, match=re.escape(
            f"job 7: timeout must be a finite number of seconds > 0, got {timeout!r}")):
        s.core.handle(ev.Submit(0.5, 7, timeout=timeout))
    # Refused before anything changed: the job does not exist.
    assert (s.core.jobs, s.core.queue, s.core.children) == (
        before.jobs, before.queue, before.children)


def test_submit_with_a_timeout_too_large_for_a_float_is_a_config_error() -> None:
    s = Script()
    with pytest.raises(ConfigError, match=re.escape(
            "job 7: timeout must be a finite number of seconds > 0, got 10000000000000000000"
            "...(401 characters)")):
        s.core.handle(ev.Submit(0.5, 7, timeout=10**400))
    assert 7 not in s.core.jobs


def test_submit_with_a_good_timeout_overrides_job_timeout() -> None:
    s = Script()
    s.warm(0, 0.0)
    s.feed(ev.Submit(1.0, 7, timeout=2), ev.JobAck(1.0, 0, 7))
    assert s.core.jobs[7].deadline == 3.0


def test_a_job_id_submitted_twice_is_refused() -> None:
    s = Script()
    s(ev.Submit(0.0, 7))
    with pytest.raises(WayoutError, match=re.escape(
            "job 7 was submitted twice: job ids must be unique")):
        s.core.handle(ev.Submit(0.1, 7))
    assert list(s.core.queue) == [7]


class Nap(ev.Event):
    pass


def test_an_unknown_event_is_refused_by_name() -> None:
    core = SupervisorCore(PoolConfig(), now=0.0)

    with pytest.raises(WayoutError, match=re.escape(
            "the supervisor core does not know the event Nap(now=1.0)")):
        core.handle(Nap(1.0))


def test_a_spawned_report_for_an_unknown_child_is_logged_not_fatal() -> None:
    s = Script()
    assert s(ev.Spawned(0.1, 42, 4242), keep=(ev.Log,)) == [
        ev.Log("warning", "process 4242 reported for unknown child 42", 42, None),
    ]
