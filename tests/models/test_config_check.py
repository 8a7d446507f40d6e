"""``wayout check --config``: wayout's core with the ordering of a user's durations, and hazards."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsm.config import PoolConfig
from models.config_check import DURATIONS, ColdStart, order_preserving
from models.explorer import explore
from runtime.tools.cli import main

SETTINGS = Path(__file__).resolve().parent.parent / "examples" / "pool_settings.py"


def test_the_mapping_keeps_the_order_the_ties_and_the_sums() -> None:
    config = PoolConfig(spawn_timeout=10, initialize_timeout=10, queue_timeout=15)
    mapped = order_preserving(config)
    for a in DURATIONS:
        for b in DURATIONS:
            x, y = getattr(config, a), getattr(config, b)
            u, v = getattr(mapped, a), getattr(mapped, b)
            assert (x < y, x == y) == (u < v, u == v), (a, b)
    assert mapped.queue_timeout < mapped.spawn_timeout + mapped.initialize_timeout
    assert max(getattr(mapped, n) for n in DURATIONS) <= len(DURATIONS) + 2
    fixed = order_preserving(PoolConfig(spawn_timeout=10, initialize_timeout=10,
                                        queue_timeout=25))
    assert fixed.queue_timeout > fixed.spawn_timeout + fixed.initialize_timeout


def test_the_cold_start_hazard_is_a_failed_goal_with_its_story() -> None:
    bad = explore(ColdStart(PoolConfig(spawn_timeout=10, initialize_timeout=10,
                                       queue_timeout=15)))
    v = bad.violation("cold_start_serves")
    assert v is not None
    assert [s.label for s in v.trace.onward] == [
        "child 0's process starts, at spawn_timeout 10s",
        "job 0's queue_timeout fires, at 15s: job 0 failed: NoCapacity",
        "child 0 is ready, at spawn_timeout + initialize_timeout = 20s",
    ]
    assert "Fix: raise queue_timeout above 20s" in v.detail[0]
    # A tie: the queue deadline fires before the child's Ready of the same instant.
    assert explore(ColdStart(PoolConfig(spawn_timeout=10, initialize_timeout=10,
                                        queue_timeout=20))).violations
    assert explore(ColdStart(PoolConfig())).violations == ()


def test_check_config_finds_the_cold_pool_hazard(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", f"{SETTINGS}:COLD", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "cold_start_serves violated" in out
    assert "job 0 failed: NoCapacity" in out
    assert "Fix: raise queue_timeout above 20s" in out
    assert "1 hazard(s)" in out
    assert "wayout-your-config" in out and "verified" in out  # the core itself is sound
    assert [p.name for p in tmp_path.iterdir()] == [
        "counterexample-config-cold-start-spawn_timeout10-initialize_timeout10-"
        "queue_timeout15.svg"]


def test_check_config_passes_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--summary", "--config", f"{SETTINGS}:FIXED",
                 "--out", str(tmp_path)]) == 0
    assert "no hazard found" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_check_config_wants_a_pool_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", f"{SETTINGS}:PoolConfig"]) == 1
    assert "is the class PoolConfig, not a fsm.config.PoolConfig" in capsys.readouterr().err
