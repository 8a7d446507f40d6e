"""Deadlines at scale (issue 15, item 2): a queued burst drains at the unqueued
rate, and a mass queue timeout does not block the event loop.

- ``unqueued``: ``plan.workers`` children and as many submitters, each awaiting
  its job before it submits the next, so that no job ever waits in the queue:
  jobs/s over ``plan.unqueued_jobs`` no-op jobs.
- ``queued_burst``: ``plan.burst_jobs`` no-op jobs submitted at once (one
  synchronous loop), then awaited: jobs/s from the first submit to the last
  outcome. Judged against the unqueued rate of the same run.
- ``queue_timeout_sweep``: the only child held busy, ``plan.sweep_jobs`` jobs
  submitted at once reach ``queue_timeout`` together and fail ``NoCapacity``.
  A loop-lag probe (a task that sleeps ``PROBE_S`` and records how late it
  wakes) runs from the moment the supervisor has queued every job until the
  last outcome; each wake is a sample, judged on the worst. The intake of the
  submissions before it is probed apart (its worst block is in the JSON).

Each measure checks that its jobs ended as the row says (every burst job done,
every sweep job ``NoCapacity``) and raises otherwise: a broken pool must not
pass for a fast one.

The consumer awaits the handles in order and yields to the loop every
``CONSUMER_YIELD`` outcomes that were already there, as any consumer of a
mass of outcomes must: the probe measures the supervisor, not the bench.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import Any

from runtime.tools.bench import jobs
from runtime.tools.bench.plan import Plan
from runtime.tools.bench.results import WAYOUT, Measure

UNQUEUED = "unqueued"
BURST = "queued_burst"
SWEEP = "queue_timeout_sweep"

#: The goals of issue 15 item 2.
BURST_RATIO_GOAL = 0.8
SWEEP_BLOCK_GOAL_MS = 100.0

#: The probe's sleep: the resolution of the loop-block figure.
PROBE_S = 0.005
#: The consumer yields after this many outcomes that needed no wait.
CONSUMER_YIELD = 256
#: Bound on anything a measure waits for: a stuck pool fails the bench.
WAIT_S = 600.0


def measures(plan: Plan) -> list[Measure]:
    return [
        Measure(UNQUEUED, "unqueued jobs", "jobs/s", higher_is_better=True,
                note=(f"{plan.unqueued_jobs:,} no-op jobs, {plan.workers} children, "
                      f"{plan.workers} submitters each awaiting its job first: none queues")),
        Measure(BURST, f"{plan.burst_jobs:,}-job queued burst", "jobs/s", higher_is_better=True,
                note=(f"{plan.burst_jobs:,} no-op jobs submitted in one loop, then awaited; "
                      "first submit to last outcome")),
        Measure(SWEEP, f"{plan.sweep_jobs:,} queue timeouts at once: loop block", "ms",
                note=(f"{plan.sweep_jobs:,} jobs queued behind one busy child reach "
                      f"queue_timeout={plan.sweep_queue_timeout:g}s together; a probe sleeping "
                      f"{PROBE_S * 1000:g} ms records how late each wake is, from the queueing "
                      "of the last job to the last outcome; judged on the worst (the JSON "
                      "splits off the garbage collector's pauses)")),
    ]


def run(plan: Plan) -> list[Measure]:
    unqueued, burst, sweep = measures(plan)
    gc.collect()
    rate, extra = asyncio.run(_unqueued(plan))
    unqueued.add(WAYOUT, [rate])
    unqueued.extra.update(extra)
    gc.collect()
    rate, extra = asyncio.run(_burst(plan))
    burst.add(WAYOUT, [rate])
    burst.extra.update(extra)
    gc.collect()
    lags, extra = asyncio.run(_sweep(plan))
    sweep.add(WAYOUT, lags)
    sweep.extra.update(extra)
    return [unqueued, burst, sweep]


class LagProbe:
    """How late a task that sleeps ``interval`` wakes: the loop's longest blocks.

    It also times the garbage collector's pauses (``gc.callbacks``), so that a
    report can tell the blocks a collection caused from the others."""

    def __init__(self, interval: float = PROBE_S) -> None:
        self.interval = interval
        self.lags_ms: list[float] = []
        #: (start, end) of each wake interval, perf_counter seconds
        self.wakes: list[tuple[float, float]] = []
        #: (start, end, generation) of each collection while the probe ran
        self.collections: list[tuple[float, float, int]] = []
        self._task: asyncio.Task[None] | None = None
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self.collections.append((self._gc_started, now, int(info["generation"])))

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock = time.perf_counter
        while True:
            t0 = clock()
            await asyncio.sleep(self.interval)
            t1 = clock()
            self.wakes.append((t0, t1))
            self.lags_ms.append(max(0.0, (t1 - t0 - self.interval) * 1000.0))

    async def stop(self) -> list[float]:
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        return self.lags_ms

    def gc_figures(self) -> dict[str, Any]:
        """The collections' share of the blocks: their pauses, and the worst
        lag of the wakes less the collectors' time inside each wake (a wake
        that a small collection overlapped still counts its other work)."""
        pauses = [(end - start) * 1000.0 for start, end, _ in self.collections]
        clear = [max(0.0, lag - 1000.0 * sum(max(0.0, min(e, t1) - max(s, t0))
                                             for s, e, _ in self.collections))
                 for (t0, t1), lag in zip(self.wakes, self.lags_ms, strict=True)]
        return {
            "gc_collections": len(pauses),
            "gc_full_collections": sum(1 for *_, g in self.collections if g == 2),
            "gc_ms_total": round(sum(pauses), 1),
            "gc_max_pause_ms": round(max(pauses, default=0.0), 1),
            "worst_block_without_gc_ms": round(max(clear, default=0.0), 1),
        }


async def consume(handles: Sequence[Any]) -> dict[str, int]:
    """Await every handle in order; count outcomes by error type (``ok``: a value)."""
    counts: dict[str, int] = {}
    ready_in_a_row = 0
    for handle in handles:
        if handle.done():
            ready_in_a_row += 1
            if ready_in_a_row >= CONSUMER_YIELD:
                ready_in_a_row = 0
                await asyncio.sleep(0)
        else:
            ready_in_a_row = 0
        try:
            await handle
            kind = "ok"
        except Exception as exc:  # the outcome, counted: a sweep expects NoCapacity
            kind = type(exc).__name__
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def expect(counts: dict[str, int], kind: str, n: int) -> None:
    """Raise unless all ``n`` jobs ended as ``kind``: else the row measured something else."""
    if counts != {kind: n}:
        raise RuntimeError(f"expected {n:,} outcomes {kind}, got {counts}: "
                           "the figure would not measure what its row says")


def _config(plan: Plan, children: int, **changes: Any) -> Any:
    from runtime import PoolConfig

    return PoolConfig(num_idle=children, max_children=children,
                      start_method=plan.start_method, **changes)


async def _ready(pool: Any, n: int) -> None:
    await pool.wait_for(lambda s: s.children.get("ready", 0) == n, timeout=WAIT_S)


async def _unqueued(plan: Plan) -> tuple[float, dict[str, Any]]:
    from runtime import Pool

    per = max(1, plan.unqueued_jobs // plan.workers)

    async def submitter(pool: Any) -> None:
        for _ in range(per):
            await pool.run(jobs.noop)

    async with Pool(_config(plan, plan.workers)) as pool:
        await _ready(pool, plan.workers)
        t0 = time.perf_counter()
        await asyncio.gather(*(submitter(pool) for _ in range(plan.workers)))
        seconds = time.perf_counter() - t0
    n = per * plan.workers
    return n / seconds, {"jobs": n, "seconds": round(seconds, 3), "workers": plan.workers}


async def _burst(plan: Plan) -> tuple[float, dict[str, Any]]:
    from runtime import Pool

    n = plan.burst_jobs
    config = _config(plan, plan.workers, queue_timeout=WAIT_S)
    async with Pool(config) as pool:
        await _ready(pool, plan.workers)
        probe = LagProbe()
        probe.start()
        t0 = time.perf_counter()
        handles = [pool.submit(jobs.noop) for _ in range(n)]
        submitted = time.perf_counter() - t0
        counts = await consume(handles)
        seconds = time.perf_counter() - t0
        lags = await probe.stop()
    expect(counts, "ok", n)
    return n / seconds, {
        "jobs": n, "workers": plan.workers, "seconds": round(seconds, 3),
        "submit_loop_seconds": round(submitted, 3), "outcomes": counts,
        # The submit loop itself is one block of the caller's own making.
        "max_loop_block_ms": round(max(lags, default=0.0), 1),
        **probe.gc_figures(),
    }


async def _sweep(plan: Plan) -> tuple[list[float], dict[str, Any]]:
    from runtime import Pool

    n = plan.sweep_jobs
    hold_s = plan.sweep_queue_timeout + WAIT_S
    config = _config(plan, 1, queue_timeout=plan.sweep_queue_timeout, job_timeout=hold_s,
                     close_timeout=1.0)
    async with Pool(config) as pool:
        await _ready(pool, 1)
        busy = pool.submit(jobs.pause, hold_s)
        await pool.wait_for(lambda s: s.jobs.get("running", 0) == 1, timeout=WAIT_S)
        t0 = time.perf_counter()
        handles = [pool.submit(jobs.noop) for _ in range(n)]
        submitted = time.perf_counter() - t0
        # The supervisor takes the submissions in first (STEP_EVENTS at a
        # time): probed apart, so that the row is the timeouts' alone.
        intake = LagProbe()
        intake.start()
        await pool.wait_for(lambda s: s.queued == n, timeout=WAIT_S)
        intake_lags = await intake.stop()
        probe = LagProbe()
        probe.start()
        counts = await consume(handles)
        seconds = time.perf_counter() - t0
        lags = await probe.stop()
        busy.cancel()
    expect(counts, "NoCapacity", n)
    return lags, {
        "jobs": n, "outcomes": counts, "seconds": round(seconds, 3),
        "submit_loop_seconds": round(submitted, 3), "probe_samples": len(lags),
        "queue_timeout_s": plan.sweep_queue_timeout,
        "intake_max_block_ms": round(max(intake_lags, default=0.0), 1),
        **probe.gc_figures(),
    }
