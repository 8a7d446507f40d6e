"""The driver feeds the core in steps of at most STEP_EVENTS and yields in
between (issue 15 item 2): a burst of submissions or a mass of queue timeouts
never holds the event loop for the whole mass.

A ManualClock makes the jobs' deadlines equal, so that every queue timeout is
due at the same instant; an observer task counts what the core has taken in
(or settled) each time it gets the loop. Without the steps it would see
nothing, then everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable

import child_funcs as cf
import pytest
from runtime_support import cfg, pool_test, within

from runtime import JobHandle, Pool
from runtime.clock import ManualClock
from runtime.errors import JobCancelled, NoCapacity
from runtime.pool import STEP_EVENTS

N = 4 * STEP_EVENTS + 7


async def observe(count: Callable[[], int], until: int) -> list[int]:
    """``count()`` each time this task gets the loop, until it reaches ``until``."""
    seen = [count()]
    while seen[-1] < until:
        await asyncio.sleep(0)
        seen.append(count())
    return seen


def jumps(seen: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(seen) if b != a]


def assert_in_steps(seen: list[int]) -> None:
    steps = jumps(seen)
    assert len(steps) >= N // STEP_EVENTS and max(steps) <= STEP_EVENTS, steps


@contextlib.asynccontextmanager
async def n_queued_behind_a_held_child(queue_timeout: float) -> AsyncIterator[
        tuple[ManualClock, Pool, JobHandle, list[JobHandle], list[int]]]:
    """One child held by a long job and N jobs submitted at once behind it: the
    clock, the pool, the held job, the handles and what an observer saw of
    their intake."""
    clock = ManualClock(start=10.0)
    config = cfg("fork", num_idle=1, max_children=1, queue_timeout=queue_timeout,
                 job_timeout=60.0)
    async with Pool(config, clock=clock) as pool:
        held = pool.submit(cf.sleep, 30)
        await within(10, pool.wait_for(lambda st: st.jobs.get("running", 0) == 1))
        handles = [pool.submit(cf.add, i, 1) for i in range(N)]
        seen = await within(30, observe(lambda: pool.status().queued, N))
        yield clock, pool, held, handles, seen


async def cancel(held: JobHandle) -> None:
    held.cancel()
    with pytest.raises(JobCancelled):
        await within(10, held)


@pytest.mark.timeout(60)
@pool_test
async def test_a_burst_of_submissions_is_taken_in_steps() -> None:
    async with n_queued_behind_a_held_child(60.0) as (_, _, held, handles, seen):
        assert seen[0] < N and seen[-1] == N
        assert_in_steps(seen)
        await cancel(held)
        assert [await within(30, h) for h in handles[:3]] == [1, 2, 3]
        for h in handles[3:]:
            h.cancel()


@pytest.mark.timeout(60)
@pool_test
async def test_queue_timeouts_due_together_are_fired_in_steps() -> None:
    async with n_queued_behind_a_held_child(5.0) as (clock, pool, held, handles, _):
        assert pool.status().queued == N  # all taken in at 10.0: all due at 15.0

        def settled() -> int:
            return sum(h.done() for h in handles)

        clock.advance(5.0)
        assert_in_steps(await within(30, observe(settled, N)))
        for h in handles:
            with pytest.raises(NoCapacity):
                await h
        await cancel(held)
