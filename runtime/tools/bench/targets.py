"""The targets of issue 8 (and issue 15's deadlines), judged against one run's figures.

The machine is noisy, so targets that compare with ProcessPoolExecutor use
ratios from the same run. A target whose figures are missing is not judged
(``passed`` None), never counted as met.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.tools.bench import deadlines, faults, latency, scale
from runtime.tools.bench.results import PPE, WAYOUT, Report, Verdict

Judge = Callable[[Report], Verdict]


def _p(report: Report, key: str, impl: str = WAYOUT, tail: bool = False) -> float | None:
    m = report.measures.get(key)
    if m is None or impl not in m.figures:
        return None
    s = m.figures[impl]
    return s.p99 if tail else s.p50


def _unjudged(key: str, target: str) -> Verdict:
    return Verdict(key, target, "not measured", None)


def round_trip(r: Report) -> Verdict:
    target = "p50 <= 0.8 x PPE, p99 <= 2 ms"
    ours, theirs = _p(r, latency.ROUND_TRIP), _p(r, latency.ROUND_TRIP, PPE)
    tail = _p(r, latency.ROUND_TRIP, tail=True)
    if ours is None or theirs is None or tail is None:
        return _unjudged(latency.ROUND_TRIP, target)
    ratio = ours / theirs
    return Verdict(latency.ROUND_TRIP, target, f"{ratio:.2f} x, p99 {tail:.2f} ms",
                   ratio <= 0.8 and tail <= 2.0)


def executor_round_trip(r: Report) -> Verdict:
    target = "p50 <= PPE (no slower)"
    ours = _p(r, latency.EXECUTOR_ROUND_TRIP)
    theirs = _p(r, latency.EXECUTOR_ROUND_TRIP, PPE)
    tail = _p(r, latency.EXECUTOR_ROUND_TRIP, tail=True)
    if ours is None or theirs is None or tail is None:
        return _unjudged(latency.EXECUTOR_ROUND_TRIP, target)
    ratio = ours / theirs
    return Verdict(latency.EXECUTOR_ROUND_TRIP, target, f"{ratio:.2f} x, p99 {tail:.2f} ms",
                   ratio <= 1.0)


def dispatch(r: Report) -> Verdict:
    target = "p50 <= 0.5 ms"
    ours = _p(r, latency.DISPATCH)
    if ours is None:
        return _unjudged(latency.DISPATCH, target)
    return Verdict(latency.DISPATCH, target, f"{ours:.3f} ms", ours <= 0.5)


def _throughput(key: str) -> Judge:
    def judge(r: Report) -> Verdict:
        target = ">= PPE"
        ours, theirs = _p(r, key), _p(r, key, PPE)
        if ours is None or theirs is None:
            return _unjudged(key, target)
        return Verdict(key, target, f"{ours / theirs:.2f} x", ours >= theirs)
    return judge


def death(r: Report) -> Verdict:
    target = "p50 <= 5 ms"
    ours = _p(r, faults.DEATH)
    if ours is None:
        return _unjudged(faults.DEATH, target)
    return Verdict(faults.DEATH, target, f"{ours:.2f} ms", ours <= 5.0)


def replenish(r: Report) -> Verdict:
    target = "<= 1.5 x floor"
    ours, floor = _p(r, faults.REPLENISH), _p(r, faults.FLOOR)
    if ours is None or floor is None:
        return _unjudged(faults.REPLENISH, target)
    return Verdict(faults.REPLENISH, target, f"{ours / floor:.2f} x", ours <= 1.5 * floor)


def hung(r: Report) -> list[Verdict]:
    out = []
    cold = _p(r, faults.COLD)
    for key in r.measures:
        if not key.startswith(faults.HUNG):
            continue
        target = "<= 3 x cold job"
        ours = _p(r, key)
        if ours is None or cold is None:
            out.append(_unjudged(key, target))
            continue
        out.append(Verdict(key, target, f"{ours / cold:.2f} x",
                           ours <= 3 * cold))
    return out


def scale_cpu(r: Report) -> Verdict:
    target = "<= 3 % of a core"
    m = r.measures.get(scale.CPU)
    if m is None or WAYOUT not in m.figures:
        return _unjudged(scale.CPU, target)
    mean = m.figures[WAYOUT].mean
    return Verdict(scale.CPU, target, f"{mean:.2f} % mean", mean <= 3.0)


def scale_memory(r: Report) -> Verdict:
    target = "<= 64 KiB/child"
    traced = _p(r, scale.MEMORY)
    if traced is None:
        return _unjudged(scale.MEMORY, target)
    return Verdict(scale.MEMORY, target, f"{traced:.1f} KiB", traced <= 64.0)


def queued_burst(r: Report) -> Verdict:
    goal = deadlines.BURST_RATIO_GOAL
    target = f">= {goal:g} x unqueued"
    ours, unqueued = _p(r, deadlines.BURST), _p(r, deadlines.UNQUEUED)
    if ours is None or unqueued is None or unqueued <= 0:
        return _unjudged(deadlines.BURST, target)
    ratio = ours / unqueued
    return Verdict(deadlines.BURST, target,
                   f"{ours:,.0f} vs {unqueued:,.0f} jobs/s: {ratio:.2f} x", ratio >= goal)


def sweep_block(r: Report) -> Verdict:
    goal = deadlines.SWEEP_BLOCK_GOAL_MS
    target = f"worst <= {goal:g} ms"
    m = r.measures.get(deadlines.SWEEP)
    if m is None or WAYOUT not in m.figures:
        return _unjudged(deadlines.SWEEP, target)
    worst = m.figures[WAYOUT].worst
    return Verdict(deadlines.SWEEP, target, f"{worst:.1f} ms worst", worst <= goal)


def judge(report: Report) -> list[Verdict]:
    verdicts = [
        round_trip(report),
        dispatch(report),
        _throughput(latency.THROUGHPUT)(report),
        _throughput(latency.THROUGHPUT_CONCURRENT)(report),
        executor_round_trip(report),
        death(report),
        replenish(report),
        *hung(report),
        scale_cpu(report),
        scale_memory(report),
        queued_burst(report),
        sweep_block(report),
    ]
    # Only the measures this run took: a --only run judges what it measured.
    return [v for v in verdicts if v.measure in report.measures]
