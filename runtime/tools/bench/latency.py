"""Warm round trip, dispatch latency and throughput, for each implementation.

Every implementation is used the way its users use it: wayout from asyncio
(``await pool.run``), the executors synchronously (``submit(...).result()``),
``runtime.Executor`` too (its own row: the synchronous API against
ProcessPoolExecutor's and loky's round trips of the same rounds);
concurrent submitters are asyncio tasks for wayout and threads for the
executors. Each pool has ``plan.workers`` workers and is warmed first.

The three pools live side by side and are measured in interleaved rounds (the
order rotating each round), so that a burst of load on a shared machine hits
all of them alike instead of skewing one implementation's figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Protocol

from runtime.tools.bench import executors, jobs
from runtime.tools.bench.plan import Plan
from runtime.tools.bench.results import IMPLEMENTATIONS, LOKY, WAYOUT, Measure

ROUND_TRIP = "round_trip"
DISPATCH = "dispatch"
THROUGHPUT = "throughput"
THROUGHPUT_CONCURRENT = "throughput_concurrent"
EXECUTOR_ROUND_TRIP = "executor_round_trip"

#: The extra subject of the rotation: wayout behind concurrent.futures.Executor.
EXECUTOR = "runtime.Executor"

#: Bound on one job of these measures: a stuck pool must fail the bench, not hang it.
JOB_TIMEOUT_S = 30.0


def measures(plan: Plan) -> list[Measure]:
    return [
        Measure(ROUND_TRIP, "warm round trip (no-op)", "ms",
                note="submit a no-op job to a warm pool, get its result"),
        Measure(DISPATCH, "dispatch latency", "ms",
                note="submit -> user code starts in the child (monotonic clock, shared)"),
        Measure(THROUGHPUT, "throughput, 1 submitter", "jobs/s", higher_is_better=True,
                note=f"no-op jobs, {plan.throughput_batch} per sample"),
        Measure(THROUGHPUT_CONCURRENT, f"throughput, {plan.submitters} submitters", "jobs/s",
                higher_is_better=True,
                note=(f"no-op jobs, {plan.throughput_batch} per sample, {plan.submitters} "
                      "concurrent submitters: asyncio tasks for wayout, threads for the "
                      "executors")),
        Measure(EXECUTOR_ROUND_TRIP, "warm round trip, runtime.Executor", "ms",
                note=("submit(noop).result() from a thread, runtime.Executor in the wayout "
                      "columns, against the executors' round trips of the same rounds")),
    ]


def run(plan: Plan, implementations: tuple[str, ...] = IMPLEMENTATIONS) -> list[Measure]:
    out = measures(plan)
    usable = []
    for impl in implementations:
        if impl == LOKY and (why := executors.loky_missing()) is not None:
            for m in out:
                m.missing[impl] = why
        else:
            usable.append(impl)
    if not usable:
        return out
    gc.collect()
    # runtime.Executor joins the rotation whenever wayout is measured.
    subjects = (*usable, EXECUTOR) if WAYOUT in usable else tuple(usable)
    samples = asyncio.run(_interleaved(plan, subjects))
    for m in out:
        for impl in usable:
            if m.key != EXECUTOR_ROUND_TRIP:
                m.add(impl, samples[impl][m.key])
            elif impl == WAYOUT:
                m.add(impl, samples[EXECUTOR][ROUND_TRIP])
            else:
                m.add(impl, samples[impl][ROUND_TRIP])
        m.extra["workers"] = plan.workers
        m.extra["rounds"] = plan.latency_rounds
    return out


class _Subject(Protocol):
    """One implementation, warm, as the measures drive it."""

    async def noop(self) -> None: ...

    async def started_at(self) -> int: ...

    async def concurrently(self, submitters: int, per_submitter: int) -> None: ...


async def _interleaved(plan: Plan, impls: tuple[str, ...]) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        impl: {m.key: [] for m in measures(plan)} for impl in impls
    }
    rounds = max(1, plan.latency_rounds)
    per_round = max(1, plan.round_trips // rounds)
    per_submitter = max(1, plan.throughput_batch // plan.submitters)
    async with contextlib.AsyncExitStack() as stack:
        subjects: dict[str, _Subject] = {}
        for impl in impls:
            subjects[impl] = await stack.enter_async_context(_subject(impl, plan))
        for subject in subjects.values():
            for _ in range(plan.warmups):
                await subject.noop()
        for r in range(rounds):
            shift = r % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                if impl == EXECUTOR:
                    await _round_trips(subjects[impl], samples[impl], per_round)
                else:
                    await _one_round(subjects[impl], samples[impl], plan, per_round,
                                     per_submitter)
    return samples


async def _round_trips(subject: _Subject, out: dict[str, list[float]], n: int) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await subject.noop()
        out[ROUND_TRIP].append((clock() - t0) / 1e6)


async def _one_round(subject: _Subject, out: dict[str, list[float]], plan: Plan,
                     n: int, per_submitter: int) -> None:
    clock = time.perf_counter_ns
    await _round_trips(subject, out, n)
    for _ in range(n):
        t0 = time.monotonic_ns()
        started = await subject.started_at()
        out[DISPATCH].append((started - t0) / 1e6)
    t0 = clock()
    for _ in range(plan.throughput_batch):
        await subject.noop()
    out[THROUGHPUT].append(plan.throughput_batch / ((clock() - t0) / 1e9))
    t0 = clock()
    await subject.concurrently(plan.submitters, per_submitter)
    out[THROUGHPUT_CONCURRENT].append(
        plan.submitters * per_submitter / ((clock() - t0) / 1e9))


@contextlib.asynccontextmanager
async def _subject(impl: str, plan: Plan) -> AsyncIterator[_Subject]:
    if impl == WAYOUT:
        from runtime import Pool, PoolConfig

        config = PoolConfig(num_idle=plan.workers, max_children=plan.workers,
                            start_method=plan.start_method)
        async with Pool(config) as pool:
            await pool.wait_for(lambda s: s.children.get("ready", 0) == plan.workers,
                                timeout=JOB_TIMEOUT_S)
            yield _WayoutSubject(pool)
        return
    if impl == EXECUTOR:
        from runtime import Executor as WayoutExecutor

        executor: Executor = WayoutExecutor(plan.workers, mp_context=plan.start_method)
        try:
            executors.warm(executor, plan.workers)
            yield _ExecutorSubject(executor, None)
        finally:
            executor.shutdown(wait=True)
        return
    executor = executors.make(impl, plan.workers, plan.start_method)
    try:
        executors.warm(executor, plan.workers)
        with ThreadPoolExecutor(max_workers=plan.submitters) as threads:
            yield _ExecutorSubject(executor, threads)
    finally:
        executor.shutdown(wait=True)


class _WayoutSubject:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def noop(self) -> None:
        await self._pool.run(jobs.noop, timeout=JOB_TIMEOUT_S)

    async def started_at(self) -> int:
        started: int = await self._pool.run(jobs.started_at, timeout=JOB_TIMEOUT_S)
        return started

    async def concurrently(self, submitters: int, per_submitter: int) -> None:
        async def submitter() -> None:
            for _ in range(per_submitter):
                await self.noop()

        await asyncio.gather(*(submitter() for _ in range(submitters)))


class _ExecutorSubject:
    """An executor driven synchronously, as its users do (the event loop just waits)."""

    def __init__(self, executor: Executor, threads: ThreadPoolExecutor | None) -> None:
        self._executor = executor
        self._threads = threads

    def _noop(self) -> None:
        self._executor.submit(jobs.noop).result(timeout=JOB_TIMEOUT_S)

    async def noop(self) -> None:
        self._noop()

    async def started_at(self) -> int:
        started: int = self._executor.submit(jobs.started_at).result(timeout=JOB_TIMEOUT_S)
        return started

    async def concurrently(self, submitters: int, per_submitter: int) -> None:
        def submitter() -> None:
            for _ in range(per_submitter):
                self._noop()

        assert self._threads is not None
        _together(self._threads, submitters, submitter)


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
