"""The injectable clock: a manual clock fires timers only when a test moves it."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.clock import ManualClock, MonotonicClock


def test_manual_clock_fires_due_timers_in_deadline_order() -> None:
    clock = ManualClock(start=10.0)
    fired: list[str] = []
    clock.call_at(12.0, lambda: fired.append("b"))
    clock.call_at(11.0, lambda: fired.append("a"))
    late = clock.call_at(13.0, lambda: fired.append("c"))
    clock.advance(0.5)
    assert fired == []
    clock.advance(1.5)
    assert fired == ["a", "b"]
    late.cancel()
    clock.advance(10)
    assert fired == ["a", "b"]
    assert clock.now() == 22.0


def test_a_late_manual_clock_moves_time_and_fires_its_timers_on_the_next_advance() -> None:
    clock = ManualClock()
    fired: list[float] = []
    clock.call_at(1.0, lambda: fired.append(clock.now()))
    clock.advance(2.0, fire=False)
    assert clock.now() == 2.0 and fired == []
    clock.advance(0)
    assert fired == [2.0]


def test_manual_clock_never_goes_back() -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(-1)


def test_monotonic_clock_timer_fires_on_the_loop() -> None:
    async def scenario() -> float:
        clock = MonotonicClock()
        fired = asyncio.get_running_loop().create_future()
        start = clock.now()
        clock.call_at(start + 0.05, lambda: fired.set_result(clock.now()))
        return await asyncio.wait_for(fired, 5) - start

    waited = asyncio.run(scenario())
    assert waited >= 0.049
    assert abs(MonotonicClock().now() - time.monotonic()) < 0.1
