"""`wayout bench --only deadlines` (issue 15 item 2): the rows' logic, not their timing.

The judges are held to synthetic figures on both sides of each goal; the
loop-lag probe must see a block the test makes itself; the consumer must
yield; a tiny run gives every figure with the outcomes each measure expects.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Generator
from typing import Any

import pytest

from runtime.tools.bench import deadlines, plan, runner, targets
from runtime.tools.bench.results import WAYOUT, Measure, Report


def report(**figures: list[float]) -> Report:
    r = Report(plan="test", machine={})
    for key, values in figures.items():
        m = Measure(key, key, "x", higher_is_better=key != deadlines.SWEEP)
        m.add(WAYOUT, values)
        r.add(m)
    return r


def test_the_burst_is_judged_against_the_unqueued_rate_of_the_same_run() -> None:
    passed = targets.queued_burst(report(unqueued=[10_000.0], queued_burst=[8_000.0]))
    assert passed.passed is True and passed.value == "8,000 vs 10,000 jobs/s: 0.80 x"
    missed = targets.queued_burst(report(unqueued=[10_000.0], queued_burst=[7_990.0]))
    assert missed.passed is False and "0.80 x" in missed.value
    assert targets.queued_burst(report(queued_burst=[8_000.0])).passed is None


def test_the_sweep_is_judged_on_its_worst_loop_block() -> None:
    # Most wakes are on time: the p50 would pass; one block of 101 ms does not.
    lags = [0.1] * 999 + [101.0]
    missed = targets.sweep_block(report(queue_timeout_sweep=lags))
    assert missed.passed is False and missed.value == "101.0 ms worst"
    passed = targets.sweep_block(report(queue_timeout_sweep=[0.1] * 999 + [100.0]))
    assert passed.passed is True
    assert targets.sweep_block(report()).passed is None
    judged = {v.measure for v in targets.judge(report(queue_timeout_sweep=lags))}
    assert judged == {deadlines.SWEEP}


def test_the_probe_sees_a_block_of_the_loop() -> None:
    async def scenario() -> list[float]:
        probe = deadlines.LagProbe(interval=0.001)
        probe.start()
        await asyncio.sleep(0.01)
        time.sleep(0.06)  # the block to be measured, not a synchronisation
        await asyncio.sleep(0.01)
        return await probe.stop()

    lags = asyncio.run(scenario())
    assert max(lags) >= 50.0
    assert len(lags) >= 2


def test_the_probe_tells_the_collectors_pauses_from_other_blocks() -> None:
    async def scenario() -> deadlines.LagProbe:
        probe = deadlines.LagProbe(interval=0.001)
        probe.start()
        await asyncio.sleep(0.01)
        gc.collect()  # a full collection, while the probe runs
        await asyncio.sleep(0.01)
        time.sleep(0.03)  # a block that is no collection
        await asyncio.sleep(0.01)
        await probe.stop()
        return probe

    probe = asyncio.run(scenario())
    figures = probe.gc_figures()
    assert figures["gc_full_collections"] >= 1
    assert figures["gc_ms_total"] >= figures["gc_max_pause_ms"] > 0
    assert figures["worst_block_without_gc_ms"] >= 25.0
    assert deadlines.LagProbe.__name__ not in str(gc.callbacks)  # unregistered


class Done:
    """A handle whose outcome is already there."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def done(self) -> bool:
        return True

    def __await__(self) -> Generator[Any, None, None]:
        if self.error is not None:
            raise self.error
        return None
        yield  # a generator, as __await__ must return


def test_the_consumer_counts_outcomes_and_yields_to_the_loop() -> None:
    n = 5 * deadlines.CONSUMER_YIELD

    async def scenario() -> tuple[dict[str, int], int]:
        turns = 0
        stop = False

        async def other() -> None:
            nonlocal turns
            while not stop:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.get_running_loop().create_task(other())
        await asyncio.sleep(0)
        handles = [Done(KeyError()) if i % 2 else Done() for i in range(n)]
        counts = await deadlines.consume(handles)
        stop = True
        await task
        return counts, turns

    counts, turns = asyncio.run(scenario())
    assert counts == {"ok": n // 2, "KeyError": n // 2}
    assert turns >= 5


def test_a_measure_whose_jobs_ended_otherwise_is_refused() -> None:
    deadlines.expect({"NoCapacity": 3}, "NoCapacity", 3)
    for counts in ({"NoCapacity": 2}, {"NoCapacity": 2, "ChildDied": 1}, {}):
        with pytest.raises(RuntimeError, match="would not measure"):
            deadlines.expect(counts, "NoCapacity", 3)


@pytest.mark.timeout(120)
def test_a_tiny_deadlines_run_gives_every_figure() -> None:
    tiny = plan.TINY
    r = runner.run(tiny, only=["deadlines"])
    assert r.errors == {}
    assert set(r.measures) == {deadlines.UNQUEUED, deadlines.BURST, deadlines.SWEEP}
    assert r.measures[deadlines.BURST].extra["outcomes"] == {"ok": tiny.burst_jobs}
    assert r.measures[deadlines.SWEEP].extra["outcomes"] == {"NoCapacity": tiny.sweep_jobs}
    assert r.measures[deadlines.UNQUEUED].extra["jobs"] == tiny.unqueued_jobs
    for key in (deadlines.UNQUEUED, deadlines.BURST):
        assert r.measures[key].figures[WAYOUT].p50 > 0
    assert r.measures[deadlines.SWEEP].figures[WAYOUT].n >= 1
    assert {v.measure for v in r.verdicts} == {deadlines.BURST, deadlines.SWEEP}
    for v in r.verdicts:
        assert isinstance(v.passed, bool), v
