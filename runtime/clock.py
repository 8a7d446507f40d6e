"""The time the supervisor loop reads, and the one timer it sets.

The core keeps its deadlines as data in this clock's time; the pool's driver
asks the clock to wake it at ``core.next_deadline()``. The default is the
monotonic clock, the same one asyncio uses (wall-clock time would jump with
NTP and make a booting child look ancient or newborn, gunicorn's bug Z7).
Tests substitute ``ManualClock`` and move time by hand: advancing it wakes the
driver exactly as a real timer would.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """The current time, in seconds."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` (on the event loop's thread) once the time is ``when`` or later."""


class MonotonicClock:
    """``time.monotonic``, with timers on the running event loop."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        # Relative to the loop's own clock, in case a custom loop uses another one.
        return loop.call_at(loop.time() + (when - self.now()), callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when a test calls ``advance``; due timers then fire."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def advance(self, seconds: float, *, fire: bool = True) -> None:
        """Move time forward and run the callbacks of every timer now due.

        ``fire=False`` runs none of them yet, as a loop that is late does: what
        the loop runs first sees deadlines past that no timer has reported.
        The next ``advance`` runs them.
        """
        if seconds < 0:
            raise ValueError(f"a clock never goes back (advance by {seconds!r})")
        self._now += seconds
        if not fire:
            return
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()
