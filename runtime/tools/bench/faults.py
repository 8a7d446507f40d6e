"""Death detection, replenish (and its floor), cold jobs and the hung warm-up penalty.

Every wait here is on an event: ``pool.wait_for`` (checked after every
supervisor step) for wayout, a future's exception for the executors, a pipe
for the bare process. Nothing sleeps to find out whether something happened.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import tempfile
import time
from concurrent.futures import Executor
from typing import Any

from runtime.tools.bench import executors, jobs
from runtime.tools.bench.plan import Plan
from runtime.tools.bench.results import LOKY, PPE, WAYOUT, Measure
from runtime.tools.bench.stats import summarize

DEATH = "death_detection"
REPLENISH = "replenish"
FLOOR = "replenish_floor"
COLD = "cold_job"
HUNG = "hung_warmup"
CORE_KNOWS = "core_knows"

#: Bound on every wait of these measures: a stuck pool must fail the bench, not hang it.
WAIT_TIMEOUT_S = 60.0
#: Restart intensity out of the way: the death measure kills children on purpose.
MANY_RESTARTS = 1_000_000


def _ms_since(t0: int) -> float:
    return (time.perf_counter_ns() - t0) / 1e6


def _ready(n: int) -> Any:
    return lambda s: s.children.get("ready", 0) >= n


# ----------------------------------------------------------------------------
# Death detection and replenish
# ----------------------------------------------------------------------------


def death_and_replenish(plan: Plan) -> list[Measure]:
    death = Measure(DEATH, "death detection", "ms")
    replenish = Measure(REPLENISH, "replenish", "ms",
                        note=f"SIGKILL an idle child -> {plan.workers} children ready again")
    floor = Measure(FLOOR, "replenish floor: bare process", "ms")
    death.note = ("SIGKILL an idle child -> the supervisor knows. wayout: the core's ready "
                  "count drops (child 'exit' -> killed); executors: a pending future raises "
                  "BrokenProcessPool")
    floor.note = (f"a bare multiprocessing process ({plan.start_method}) started until its "
                  "first message over a pipe; wayout's column holds it (no pool involved)")
    executor_samples = {PPE: plan.executor_death_samples}
    if (why := executors.loky_missing()) is None:
        executor_samples[LOKY] = plan.loky_death_samples
    else:
        death.missing[LOKY] = why
    gc.collect()
    figures = asyncio.run(_interleaved_death(plan, executor_samples))
    death.add(WAYOUT, figures[DEATH])
    replenish.add(WAYOUT, figures[REPLENISH])
    floor.add(WAYOUT, figures[FLOOR])
    for impl in executor_samples:
        death.add(impl, figures[impl])
    if figures[CORE_KNOWS]:
        death.extra["wayout_core_knows_p50_ms"] = round(
            summarize(figures[CORE_KNOWS]).p50, 3)
    replenish.missing[PPE] = "does not replenish: a dead worker breaks the whole executor"
    replenish.missing[LOKY] = "does not replenish: a dead worker breaks the executor"
    return [death, replenish, floor]


async def _interleaved_death(plan: Plan, executor_samples: dict[str, int]
                             ) -> dict[str, list[float]]:
    """wayout's samples from one pool, with the executors' and the floor's in between.

    Interleaving spreads the machine's load bursts over every implementation.
    """
    from runtime import Pool, PoolConfig

    n = plan.workers
    config = PoolConfig(num_idle=n, max_children=n, start_method=plan.start_method,
                        max_restarts=MANY_RESTARTS)
    out: dict[str, list[float]] = {DEATH: [], REPLENISH: [], FLOOR: [], CORE_KNOWS: [],
                                   **{impl: [] for impl in executor_samples}}
    floor_ctx = multiprocessing.get_context(plan.start_method)
    _bare_start(floor_ctx)  # may start the forkserver itself: not a sample
    total = plan.death_samples
    async with Pool(config) as pool:
        await _kill_idle_child(pool, n)  # warm-up
        for i in range(total):
            seen, back, core_knows = await _kill_idle_child(pool, n)
            out[DEATH].append(seen)
            out[REPLENISH].append(back)
            if core_knows is not None:
                out[CORE_KNOWS].append(core_knows)
            # Spread the other samples evenly over wayout's.
            if _due(i, total, plan.floor_samples):
                out[FLOOR].append(_bare_start(floor_ctx))
            for impl, count in executor_samples.items():
                if _due(i, total, count):
                    out[impl].append(_executor_death(impl, plan))
    return out


def _due(i: int, total: int, wanted: int) -> bool:
    """Whether step ``i`` of ``total`` takes one of ``wanted`` samples spread evenly."""
    if wanted <= 0:
        return False
    if wanted >= total:
        return True
    return (i * wanted) // total != ((i + 1) * wanted) // total


async def _kill_idle_child(pool: Any, n: int) -> tuple[float, float, float | None]:
    """SIGKILL one of ``n`` ready children.

    Returns ms until a task waiting on the pool sees it, until ``n`` children
    are ready again, and until the core took the exit in (the time stamp of
    the child's 'exit' transition: earlier than what a task can see, because
    the driver finishes its step, replacement spawn included, first).
    """
    status = await pool.wait_for(lambda s: len(s.pids) == n and _ready(n)(s),
                                 timeout=WAIT_TIMEOUT_S)
    child_id, pid = next(iter(status.pids.items()))
    t0 = time.perf_counter_ns()
    mono0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    await pool.wait_for(lambda s: s.children.get("ready", 0) < n, timeout=WAIT_TIMEOUT_S)
    seen = _ms_since(t0)
    await pool.wait_for(_ready(n), timeout=WAIT_TIMEOUT_S)
    back = _ms_since(t0)
    exits = [t.time for t in pool.transitions()
             if t.kind == "child" and t.ident == child_id and t.event == "exit"]
    core_knows = (exits[-1] - mono0) * 1000 if exits else None
    return seen, back, core_knows


def _executor_death(impl: str, plan: Plan) -> float:
    """One sample: a fresh executor, one worker busy, SIGKILL the idle one."""
    executor: Executor = executors.make(impl, plan.workers, plan.start_method)
    try:
        pids = executors.warm(executor, plan.workers)
        future, busy = executors.occupy_one(executor)
        idle = sorted(pids - {busy})[0]
        t0 = time.perf_counter_ns()
        os.kill(idle, signal.SIGKILL)
        try:
            future.result(timeout=WAIT_TIMEOUT_S)
        except executors.broken_errors():
            return _ms_since(t0)
        raise RuntimeError(f"{impl}: the pending future did not see its worker die")
    finally:
        executor.shutdown(wait=True)


def _bare_start(ctx: Any) -> float:
    """Start a bare process with the same start method; ms until its first message."""
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=jobs.say_hello, args=(writer,))
    t0 = time.perf_counter_ns()
    process.start()
    writer.close()
    try:
        if not reader.poll(WAIT_TIMEOUT_S):
            raise TimeoutError("the bare process sent nothing")
        reader.recv_bytes()
        return _ms_since(t0)
    finally:
        reader.close()
        process.join(WAIT_TIMEOUT_S)
        if process.exitcode is None:
            process.kill()
            process.join()


# ----------------------------------------------------------------------------
# Cold jobs and the hung warm-up penalty
# ----------------------------------------------------------------------------


def cold_and_hung(plan: Plan) -> list[Measure]:
    cold = Measure(COLD, "cold job", "ms")
    cold.note = ("a new pool's first job, submitted at once. wayout: num_idle=1, submitted "
                 "while the pool starts; executors: a new executor's first job")
    hung_measures = []
    for timeout in plan.hung_timeouts:
        key = HUNG if timeout == plan.hung_timeouts[0] else f"{HUNG}_{timeout:g}s"
        hung = Measure(key, f"hung warm-up ({timeout:g} s timeout)", "ms")
        hung.note = (f"as cold job, but the first warming child's initializer hangs "
                     f"(initialize_timeout {timeout:g} s)")
        hung.extra["initialize_timeout_s"] = timeout
        hung.missing[PPE] = "no initializer timeout: a hanging initializer hangs the executor"
        hung.missing[LOKY] = "no initializer timeout: a hanging initializer hangs the executor"
        hung_measures.append(hung)
    impls = [PPE]
    if (why := executors.loky_missing()) is None:
        impls.append(LOKY)
    else:
        cold.missing[LOKY] = why
    gc.collect()
    # Interleaved sample by sample, so that load bursts hit every variant alike.
    cold_samples: dict[str, list[float]] = {impl: [] for impl in (WAYOUT, *impls)}
    hung_samples: list[list[float]] = [[] for _ in hung_measures]
    for i in range(max(plan.cold_samples, plan.hung_samples)):
        if i < plan.cold_samples:
            cold_samples[WAYOUT].append(
                asyncio.run(_wayout_cold(plan, hang=False, init_timeout=3.0)))
            for impl in impls:
                cold_samples[impl].append(_executor_cold(impl, plan))
        if i < plan.hung_samples:
            for hung, values in zip(hung_measures, hung_samples, strict=True):
                timeout = hung.extra["initialize_timeout_s"]
                values.append(asyncio.run(_wayout_cold(plan, hang=True, init_timeout=timeout)))
    for impl, values in cold_samples.items():
        cold.add(impl, values)
    for hung, values in zip(hung_measures, hung_samples, strict=True):
        hung.add(WAYOUT, values)
    return [cold, *hung_measures]


async def _wayout_cold(plan: Plan, *, hang: bool, init_timeout: float) -> float:
    """Latency of a job submitted as a num_idle=1 pool starts; ``hang``: one child hangs."""
    from runtime import Pool, PoolConfig

    with tempfile.TemporaryDirectory(prefix="wayout-bench-") as tmp:
        marker = os.path.join(tmp, "hung")
        if not hang:
            # The marker exists: no child wins the right to hang, so every child
            # runs the same initializer code and warms up normally.
            open(marker, "wb").close()
        config = PoolConfig(
            num_idle=1, max_children=4, start_method=plan.start_method,
            initializer=jobs.hang_in_first, initargs=(marker,),
            initialize_timeout=init_timeout, close_timeout=1.0, kill_timeout=5.0,
        )
        pool = Pool(config)
        starting = asyncio.ensure_future(pool.start())
        try:
            # One turn of the loop: start() creates the supervisor and posts its
            # Start, so the job below is the pool's first request after it.
            await asyncio.sleep(0)
            t0 = time.perf_counter_ns()
            await pool.run(jobs.noop, timeout=WAIT_TIMEOUT_S)
            elapsed = _ms_since(t0)
            await starting
        finally:
            if not starting.done():
                starting.cancel()
            await pool.close()
    return elapsed


def _executor_cold(impl: str, plan: Plan) -> float:
    t0 = time.perf_counter_ns()
    executor = executors.make(impl, plan.workers, plan.start_method)
    try:
        executor.submit(jobs.noop).result(timeout=WAIT_TIMEOUT_S)
        return _ms_since(t0)
    finally:
        executor.shutdown(wait=True)
