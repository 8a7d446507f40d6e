"""Many idle children: the supervisor's CPU and the parent's memory per child.

Two pools of ``plan.scale_children`` idle children pinged every
``plan.scale_ping_interval`` seconds. The first measures the parent's CPU
time over a window (and its RSS growth); the second runs under
``tracemalloc`` to count the Python memory the pool holds per child. They are
separate because tracing allocations would inflate the CPU figure. The first
also records the growth of the parent's RSS (in the JSON only: the allocator
reuses memory the earlier measures freed, so it understates).
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import Any

import psutil  # type: ignore[import-untyped]

from runtime.tools.bench.plan import Plan
from runtime.tools.bench.results import WAYOUT, Measure

CPU = "scale_cpu"
MEMORY = "scale_memory"

#: Bound on starting the children: tens of them may take seconds on 2 cores.
START_TIMEOUT_S = 120.0


def _config(plan: Plan) -> Any:
    from runtime import PoolConfig

    n = plan.scale_children
    return PoolConfig(
        num_idle=n, max_children=n, start_method=plan.start_method,
        ping_interval=plan.scale_ping_interval, ping_timeout=10 * plan.scale_ping_interval,
        start_timeout=START_TIMEOUT_S,
    )


def run(plan: Plan) -> list[Measure]:
    n = plan.scale_children
    cpu = Measure(CPU, f"{n} idle: supervisor CPU", "% core")
    memory = Measure(MEMORY, f"{n} idle: memory/child", "KiB")
    gc.collect()
    usage, per_child_rss, extra = asyncio.run(_cpu_window(plan))
    cpu.add(WAYOUT, usage)
    cpu.extra.update(extra)
    cpu.note = (f"{n} idle children pinged every {plan.scale_ping_interval:g} s: the parent "
                f"process's CPU time (all threads) over {plan.scale_window_s:g} s, sampled "
                "per ping interval; judged on the mean")
    gc.collect()
    memory.add(WAYOUT, [asyncio.run(_traced_memory(plan))])
    memory.note = ("tracemalloc: Python memory the parent holds once the pool started and "
                   "ran a few ping rounds, / children")
    # Kept in the JSON only: after the other measures the allocator has free
    # memory to reuse, so RSS growth understates (often reads 0).
    memory.extra["rss_growth_kib_per_child"] = round(per_child_rss, 2)
    return [cpu, memory]


async def _cpu_window(plan: Plan) -> tuple[list[float], float, dict[str, Any]]:
    from runtime import Pool

    me = psutil.Process()
    n = plan.scale_children
    rss_before = me.memory_info().rss
    started = time.perf_counter()
    async with Pool(_config(plan)) as pool:
        await pool.wait_for(lambda s: s.children.get("ready", 0) == n, timeout=START_TIMEOUT_S)
        start_s = time.perf_counter() - started
        # Let the spawn burst settle: one full ping round before measuring.
        await asyncio.sleep(plan.scale_ping_interval)
        pongs_before = _pongs(pool)
        samples = []
        window_start = time.perf_counter()
        # The windows are the measurement itself (CPU per interval of wall time),
        # not a wait for something to happen.
        slices = max(1, round(plan.scale_window_s / plan.scale_ping_interval))
        for _ in range(slices):
            c0 = _cpu_seconds()
            w0 = time.perf_counter()
            await asyncio.sleep(plan.scale_ping_interval)
            samples.append(100.0 * (_cpu_seconds() - c0) / (time.perf_counter() - w0))
        window = time.perf_counter() - window_start
        pongs = _pongs(pool) - pongs_before
        rss_after = me.memory_info().rss
        ready = pool.status().children.get("ready", 0)
    extra = {
        "children": n,
        "start_seconds": round(start_s, 3),
        "pongs_per_second": round(pongs / window, 1),
        "ready_at_end": ready,
    }
    return samples, (rss_after - rss_before) / n / 1024, extra


def _cpu_seconds() -> float:
    # CLOCK_PROCESS_CPUTIME_ID: nanosecond resolution, where psutil's
    # cpu_times() counts 10 ms ticks (too coarse for a 1 s window).
    return time.process_time_ns() / 1e9


def _pongs(pool: Any) -> int:
    return sum(1 for t in pool.transitions() if t.event == "pong")


async def _traced_memory(plan: Plan) -> float:
    from runtime import Pool

    n = plan.scale_children
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        async with Pool(_config(plan)) as pool:
            await pool.wait_for(lambda s: s.children.get("ready", 0) == n,
                                timeout=START_TIMEOUT_S)
            # A few ping rounds, so per-child bookkeeping of a running pool is included.
            await asyncio.sleep(3 * plan.scale_ping_interval)
            gc.collect()
            held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (held - base) / n / 1024
