"""PoolConfig refuses every value the supervisor cannot honour, with a message naming it."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest

from fsm.config import DYNAMIC_SETTINGS, PoolConfig
from fsm.errors import ConfigError, WayoutError
from fsm.lifecycles import ALL

DURATIONS = (
    "spawn_timeout",
    "initialize_timeout",
    "ping_interval",
    "ping_timeout",
    "close_timeout",
    "kill_timeout",
    "queue_timeout",
    "ack_timeout",
    "job_timeout",
    "start_timeout",
    "drain_timeout",
    "restart_window",
    "backoff_initial",
    "backoff_max",
)


def refused(message: str) -> Any:
    return pytest.raises(ConfigError, match=re.escape(message))


def test_the_defaults_are_valid_and_every_duration_is_checked() -> None:
    config = PoolConfig()
    floats = {f.name for f in dataclasses.fields(config) if f.type == "float"}
    assert floats == set(DURATIONS)


def test_config_error_is_a_wayout_error_and_a_value_error() -> None:
    assert issubclass(ConfigError, WayoutError)
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("value", [0, 0.0, -1.0, math.inf, math.nan, True, "5"], ids=repr)
def test_a_duration_must_be_finite_and_positive(name: str, value: Any) -> None:
    with refused(f"PoolConfig.{name} must be a finite number > 0, got {value!r}"):
        PoolConfig(**{name: value})


@pytest.mark.parametrize("name", [*DURATIONS, "memory_warn_mb", "memory_limit_mb"])
def test_a_number_too_large_for_a_float_is_a_config_error_not_an_overflow(name: str) -> None:
    # float(10**400) raises OverflowError; every deadline is a float.
    with pytest.raises(ConfigError, match=rf"^PoolConfig\.{name} must be a finite number.*"
                                          r"got 10000000000000000000\.\.\.\(401 characters\)$"):
        PoolConfig(**{name: 10**400})


def test_a_large_int_that_a_float_can_hold_is_accepted() -> None:
    assert PoolConfig(spawn_timeout=10**300).duration("spawn_timeout") == 1e300


def test_max_message_bytes_is_capped_at_what_a_frame_length_can_say() -> None:
    from fsm.config import MAX_FRAME_BYTES
    from runtime import protocol

    assert MAX_FRAME_BYTES == 2 ** (8 * protocol.HEADER.size) - 1
    assert PoolConfig(max_message_bytes=MAX_FRAME_BYTES).max_message_bytes == MAX_FRAME_BYTES
    with refused(f"PoolConfig.max_message_bytes={2**32} exceeds {2**32 - 1}, the most a "
                 "frame's 4-byte length can say"):
        PoolConfig(max_message_bytes=2**32)


@pytest.mark.parametrize(
    ("name", "value", "minimum"),
    [
        ("num_idle", -1, 0),
        ("num_idle", 1.0, 0),
        ("num_idle", True, 0),
        ("max_children", 0, 1),
        ("max_children", "4", 1),
        ("max_restarts", -1, 0),
        ("max_message_bytes", 1023, 1024),
        ("max_jobs_per_child", 0, 1),
        ("max_jobs_per_child", False, 1),
    ],
)
def test_a_count_must_be_an_integer_above_its_minimum(name: str, value: Any, minimum: int) -> None:
    with refused(f"PoolConfig.{name} must be an integer >= {minimum}, got {value!r}"):
        PoolConfig(**{name: value})


def test_counts_at_their_minimum_are_accepted() -> None:
    config = PoolConfig(num_idle=0, max_children=1, max_restarts=0, max_jobs_per_child=1)
    assert (config.num_idle, config.max_children) == (0, 1)


def test_num_idle_cannot_exceed_max_children() -> None:
    with refused("PoolConfig.num_idle=5 exceeds max_children=4"):
        PoolConfig(num_idle=5, max_children=4)
    assert PoolConfig(num_idle=4, max_children=4).num_idle == 4


@pytest.mark.parametrize("ping_timeout", [2.5, 1.0])
def test_ping_timeout_must_exceed_ping_interval(ping_timeout: float) -> None:
    with refused(f"PoolConfig.ping_timeout={ping_timeout!r} must exceed ping_interval=2.5"):
        PoolConfig(ping_interval=2.5, ping_timeout=ping_timeout)


def test_backoff_max_cannot_be_below_backoff_initial() -> None:
    with refused("PoolConfig.backoff_max=1.0 is below backoff_initial=2.0"):
        PoolConfig(backoff_initial=2.0, backoff_max=1.0)


@pytest.mark.parametrize("method", ["thread", "", "Fork"])
def test_start_method_must_be_one_of_multiprocessing_s(method: str) -> None:
    with refused(f"PoolConfig.start_method={method!r} is not one of fork, forkserver, spawn"):
        PoolConfig(start_method=method)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_every_start_method_is_accepted(method: str) -> None:
    assert PoolConfig(start_method=method).start_method == method


def test_memory_warning_cannot_exceed_the_limit() -> None:
    with refused("PoolConfig.memory_warn_mb=200 exceeds memory_limit_mb=100"):
        PoolConfig(memory_warn_mb=200, memory_limit_mb=100)
    assert PoolConfig(memory_warn_mb=100, memory_limit_mb=100).memory_limit_mb == 100


@pytest.mark.parametrize("name", ["memory_warn_mb", "memory_limit_mb"])
@pytest.mark.parametrize("value", [0, -5.0, math.inf, True], ids=repr)
def test_memory_thresholds_must_be_positive_megabytes(name: str, value: Any) -> None:
    with refused(f"PoolConfig.{name} must be a finite number of megabytes > 0, got {value!r}"):
        PoolConfig(**{name: value})


def test_initializer_must_be_callable() -> None:
    with refused("PoolConfig.initializer='setup' is not callable"):
        PoolConfig(initializer="setup")  # type: ignore[arg-type]


def test_initargs_must_be_a_tuple() -> None:
    with refused("PoolConfig.initargs=[1] must be a tuple"):
        PoolConfig(initargs=[1])  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = PoolConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_idle = 3  # type: ignore[misc]


# --- the settings the lifecycle specs name ----------------------------------------


def test_every_timeout_a_spec_names_is_a_setting_or_computed_by_the_core() -> None:
    config = PoolConfig()
    named = {s.timeout for spec in ALL for s in spec.states if s.timeout is not None}
    assert DYNAMIC_SETTINGS <= named
    for setting in sorted(named - DYNAMIC_SETTINGS):
        assert config.duration(setting) > 0, setting


def test_shutdown_timeout_bounds_a_stop_then_a_kill() -> None:
    config = PoolConfig(close_timeout=1.5, kill_timeout=2.0)
    assert config.duration("shutdown_timeout") == 3.5


def test_duration_of_an_unknown_setting_names_it() -> None:
    with refused("PoolConfig has no duration setting 'nap_timeout'"):
        PoolConfig().duration("nap_timeout")

@pytest.mark.parametrize("setting", ["num_idle", "max_message_bytes", "start_method", "__class__"])
def test_duration_of_a_setting_that_is_not_a_duration_is_refused(setting: str) -> None:
    # A spec naming a count as a state's timeout would arm a nonsense deadline.
    with refused(f"PoolConfig has no duration setting {setting!r}"):
        PoolConfig().duration(setting)


@pytest.mark.parametrize("setting", sorted(DYNAMIC_SETTINGS))
def test_duration_of_a_setting_the_core_computes_is_refused(setting: str) -> None:
    with refused(f"setting {setting!r} is computed by the core, not configured"):
        PoolConfig().duration(setting)
