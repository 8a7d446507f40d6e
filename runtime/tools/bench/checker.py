"""States per second of the model checker on wayout's own model (default bounds).

The full default-bound space takes minutes, so the search stops at
``plan.checker_states``; the rate is sampled every ``plan.checker_every``
states (from the explorer's progress reports), so later, larger states count
as much as the first ones.
"""

from __future__ import annotations

import gc

from runtime.tools.bench.plan import Plan
from runtime.tools.bench.results import WAYOUT, Measure

CHECKER = "checker"


def run(plan: Plan) -> list[Measure]:
    measure = Measure(CHECKER, "model checker", "states/s", higher_is_better=True)
    try:
        from models import explorer, registry
    except ImportError as exc:
        measure.missing[WAYOUT] = f"the model checker is not available ({exc})"
        return [measure]
    design = registry.build("wayout")
    rates: list[float] = []
    last = (0, 0.0)

    def progress(p: explorer.Progress) -> None:
        nonlocal last
        states, seconds = last
        if p.seconds > seconds and p.states > states:
            rates.append((p.states - states) / (p.seconds - seconds))
        last = (p.states, p.seconds)

    gc.collect()
    result = explorer.explore(design, max_states=plan.checker_states, progress=progress,
                              progress_every=plan.checker_every)
    stats = result.stats
    measure.add(WAYOUT, rates or [stats.states_per_second])
    measure.extra.update({
        "model": "wayout",
        "parameters": result.parameters,
        "states": stats.states,
        "transitions": stats.transitions,
        "depth": stats.depth,
        "seconds": round(stats.seconds, 3),
        "overall_states_per_second": round(stats.states_per_second, 1),
        "complete": stats.complete,
    })
    measure.note = (f"explorer on wayout's model ({result.parameters}); "
                    + (f"stopped at {stats.states} states" if not stats.complete
                       else f"all {stats.states} states"))
    return [measure]
