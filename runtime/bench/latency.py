"""Warm round trip, dispatch latency and throughput, for each implementation.

Every implementation is used the way its users use it: wayout from asyncio
(``await pool.run``), the executors synchronously (``submit(...).result()``),
and concurrent submitters are asyncio tasks for wayout and threads for the
executors. Each pool has ``plan.workers`` workers and is warmed first.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

from runtime.bench import executors, jobs
from runtime.bench.plan import Plan
from runtime.bench.results import IMPLEMENTATIONS, LOKY, WAYOUT, Measure

ROUND_TRIP = "round_trip"
DISPATCH = "dispatch"
THROUGHPUT = "throughput"
THROUGHPUT_CONCURRENT = "throughput_concurrent"

#: Bound on one job of these measures: a stuck pool must fail the bench, not hang it.
JOB_TIMEOUT_S = 30.0


def measures(plan: Plan) -> list[Measure]:
    return [
        Measure(ROUND_TRIP, "warm round trip (no-op)", "ms",
                note="submit a no-op job to a warm pool, get its result"),
        Measure(DISPATCH, "dispatch latency", "ms",
                note="submit -> user code starts in the child (monotonic clock, shared)"),
        Measure(THROUGHPUT, "throughput, 1 submitter", "jobs/s",
                higher_is_better=True),
        Measure(THROUGHPUT_CONCURRENT,
                f"throughput, {plan.submitters} submitters", "jobs/s",
                higher_is_better=True),
    ]


def run(plan: Plan, implementations: tuple[str, ...] = IMPLEMENTATIONS) -> list[Measure]:
    out = measures(plan)
    by_key = {m.key: m for m in out}
    for impl in implementations:
        if impl == LOKY and (why := executors.loky_missing()) is not None:
            for m in out:
                m.missing[impl] = why
            continue
        gc.collect()
        if impl == WAYOUT:
            figures = asyncio.run(_wayout(plan))
        else:
            figures = _executor(impl, plan)
        for key, values in figures.items():
            by_key[key].add(impl, values)
    for m in out:
        m.extra["workers"] = plan.workers
    by_key[THROUGHPUT].note = f"no-op jobs, {plan.throughput_batch} per sample"
    by_key[THROUGHPUT_CONCURRENT].note = (
        f"no-op jobs, {plan.throughput_batch} per sample, {plan.submitters} concurrent "
        "submitters: asyncio tasks for wayout, threads for the executors"
    )
    return out


# ----------------------------------------------------------------------------
# wayout
# ----------------------------------------------------------------------------


async def _wayout(plan: Plan) -> dict[str, list[float]]:
    from runtime import Pool, PoolConfig

    config = PoolConfig(num_idle=plan.workers, max_children=plan.workers,
                        start_method=plan.start_method)
    async with Pool(config) as pool:
        await pool.wait_for(lambda s: s.children.get("ready", 0) == plan.workers,
                            timeout=JOB_TIMEOUT_S)

        async def call() -> None:
            await pool.run(jobs.noop, timeout=JOB_TIMEOUT_S)

        for _ in range(plan.warmups):
            await call()

        round_trips = []
        for _ in range(plan.round_trips):
            t0 = time.perf_counter_ns()
            await call()
            round_trips.append((time.perf_counter_ns() - t0) / 1e6)

        dispatch = []
        for _ in range(plan.round_trips):
            t0 = time.monotonic_ns()
            started = await pool.run(jobs.started_at, timeout=JOB_TIMEOUT_S)
            dispatch.append((started - t0) / 1e6)

        async def batch(n: int) -> None:
            for _ in range(n):
                await call()

        sequential = []
        for _ in range(plan.throughput_rounds):
            t0 = time.perf_counter_ns()
            await batch(plan.throughput_batch)
            sequential.append(plan.throughput_batch / ((time.perf_counter_ns() - t0) / 1e9))

        per = plan.throughput_batch // plan.submitters
        concurrent = []
        for _ in range(plan.throughput_rounds):
            t0 = time.perf_counter_ns()
            await asyncio.gather(*(batch(per) for _ in range(plan.submitters)))
            concurrent.append(per * plan.submitters / ((time.perf_counter_ns() - t0) / 1e9))

    return {ROUND_TRIP: round_trips, DISPATCH: dispatch, THROUGHPUT: sequential,
            THROUGHPUT_CONCURRENT: concurrent}


# ----------------------------------------------------------------------------
# ProcessPoolExecutor and loky
# ----------------------------------------------------------------------------


def _executor(impl: str, plan: Plan) -> dict[str, list[float]]:
    executor = executors.make(impl, plan.workers, plan.start_method)
    try:
        executors.warm(executor, plan.workers)
        return _executor_figures(executor, plan)
    finally:
        executor.shutdown(wait=True)


def _executor_figures(executor: Executor, plan: Plan) -> dict[str, list[float]]:
    def call() -> None:
        executor.submit(jobs.noop).result(timeout=JOB_TIMEOUT_S)

    for _ in range(plan.warmups):
        call()

    round_trips = []
    for _ in range(plan.round_trips):
        t0 = time.perf_counter_ns()
        call()
        round_trips.append((time.perf_counter_ns() - t0) / 1e6)

    dispatch = []
    for _ in range(plan.round_trips):
        t0 = time.monotonic_ns()
        started = executor.submit(jobs.started_at).result(timeout=JOB_TIMEOUT_S)
        dispatch.append((started - t0) / 1e6)

    def batch(n: int) -> None:
        for _ in range(n):
            call()

    sequential = []
    for _ in range(plan.throughput_rounds):
        t0 = time.perf_counter_ns()
        batch(plan.throughput_batch)
        sequential.append(plan.throughput_batch / ((time.perf_counter_ns() - t0) / 1e9))

    per = plan.throughput_batch // plan.submitters
    concurrent = []
    with ThreadPoolExecutor(max_workers=plan.submitters) as threads:
        for _ in range(plan.throughput_rounds):
            elapsed = _together(threads, plan.submitters, lambda: batch(per))
            concurrent.append(per * plan.submitters / elapsed)

    return {ROUND_TRIP: round_trips, DISPATCH: dispatch, THROUGHPUT: sequential,
            THROUGHPUT_CONCURRENT: concurrent}


def _together(threads: ThreadPoolExecutor, n: int, work: Callable[[], None]) -> float:
    """Run ``work`` on ``n`` threads released at once; seconds from release to the last end."""
    barrier = threading.Barrier(n + 1)

    def worker() -> None:
        barrier.wait()
        work()

    futures = [threads.submit(worker) for _ in range(n)]
    barrier.wait()
    t0 = time.perf_counter_ns()
    for f in futures:
        f.result()
    return (time.perf_counter_ns() - t0) / 1e9
