"""Run the measure groups of a plan, in one process, into one ``Report``."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterable

from runtime.tools.bench import checker, deadlines, faults, latency, machine, scale, targets
from runtime.tools.bench.plan import Plan
from runtime.tools.bench.results import Measure, Report
from runtime.tools.quiet_logs import quiet_pool_logs

Group = Callable[[Plan], list[Measure]]

#: The groups, in the order they run (and the table lists them).
GROUPS: dict[str, Group] = {
    "latency": latency.run,
    "death": faults.death_and_replenish,
    "warmup": faults.cold_and_hung,
    "scale": scale.run,
    "deadlines": deadlines.run,
    "checker": checker.run,
}


class UnknownGroup(ValueError):
    pass


def run(plan: Plan, only: Iterable[str] | None = None,
        progress: Callable[[str], None] | None = None) -> Report:
    """Run ``only`` these groups (default all); a group that raises is reported, not fatal."""
    names = list(GROUPS) if only is None else list(only)
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        raise UnknownGroup(f"unknown measure group(s) {', '.join(unknown)}; "
                           f"the groups are: {', '.join(GROUPS)}")
    report = Report(plan=plan.name, machine=machine.describe(plan.start_method))
    if plan.start_method == "forkserver":
        # One forkserver for every implementation, started as a wayout pool
        # starts it (with its preload), whichever measure happens to fork first.
        from runtime.process import ensure_forkserver

        ensure_forkserver()
    started = time.perf_counter()
    with quiet_pool_logs():
        for name in names:
            if progress is not None:
                progress(name)
            try:
                for measure in GROUPS[name](plan):
                    report.add(measure)
            except Exception as exc:
                report.errors[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
    report.seconds = time.perf_counter() - started
    report.verdicts = targets.judge(report)
    return report
