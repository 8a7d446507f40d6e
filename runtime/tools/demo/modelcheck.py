"""The demo's model-check section: ``wayout check`` over every model, told for a newcomer.

The checking is ``models``' and the running (in two processes, with a
progress display) is ``runtime.tools.model_runner``'s; this module picks the
bounds, tabulates the results with what each design is, and tells the
story of Z1 (agents-js #1748): the shortest trace to the wedge in the pre-fix
design, the fixed design verified, and wayout's own core verified.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from models.explorer import Result
    from models.registry import Bounds

Z1 = "z1-agents-js-1748"
Z1_FIX = "z1-fixed-agents-js-1768"
WAYOUT = "wayout"

#: The bounds of wayout's models under --quick: a few thousand states, about a second.
QUICK_CHILDREN = 2
QUICK_JOBS = 1


@dataclass
class CheckOutcome:
    results: list[Result]
    seconds: float
    svgs: list[str]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.as_expected for r in self.results)

    def result(self, name: str) -> Result | None:
        return next((r for r in self.results if r.design == name), None)

    @property
    def own(self) -> list[Result]:
        return [r for r in self.results if r.expected is None and not r.design.startswith("z")]

    @property
    def zoo_bad(self) -> list[Result]:
        return [r for r in self.results if r.expected is not None]

    @property
    def zoo_fixed(self) -> list[Result]:
        return [r for r in self.results if r.expected is None and r.design.startswith("z")]


INTRO = (
    "The supervisor's decisions live in one pure object, fsm.core.SupervisorCore. The model "
    "checker runs that very object against every interleaving a world can produce (children "
    "that answer, hang or die at any moment; timers firing; a user submitting, cancelling, "
    "closing) and checks three properties in every reachable state: safety (its invariants), "
    "way out (a quiescent state stays reachable: no wedge) and no hot loop (no respawn "
    "without time passing). The bug zoo models historical designs from real projects: each "
    "must be caught by the property it breaks, and its fix must pass."
)


def bounds(quick: bool) -> Bounds:
    from models.registry import Bounds

    if quick:
        return Bounds(children=QUICK_CHILDREN, jobs=QUICK_JOBS)
    return Bounds()


def run(console: Console, *, quick: bool, out: Path) -> CheckOutcome:
    from models import registry
    from runtime.tools import model_runner

    console.print(Text(INTRO), soft_wrap=not console.is_terminal)
    # The zoo first: it takes milliseconds, so its verdicts show while wayout's
    # own (larger) models are still being explored.
    names = sorted(registry.names(), key=lambda n: registry.get(n).zoo == "")
    b = bounds(quick)
    how = f" (quick bounds: children={b.children}, jobs={b.jobs})" if quick else ""
    console.print(Text(f"checking {len(names)} models in 2 processes{how}...", style="dim"))
    started = time.monotonic()
    results = model_runner.run_models(names, b, workers=2,
                                      max_states=model_runner.DEFAULT_MAX_STATES,
                                      console=console)
    results.sort(key=lambda r: registry.names().index(r.design)
                 if r.design in registry.names() else len(names))
    outcome = CheckOutcome(results, time.monotonic() - started, [])
    console.print(results_table(results))
    tell_z1(console, outcome)
    for result in outcome.zoo_bad:
        violation = result.violation(result.expected or "")
        if violation is not None:
            outcome.svgs.append(model_runner.write_counterexample(out, result, violation))
    if outcome.svgs:
        from models.report import picture_name

        z1 = next(r for r in results if r.design == Z1)
        z1_svg = out / picture_name(z1.design, z1.parameters)
        console.print(Text(f"drew {len(outcome.svgs)} counterexamples as pictures, e.g. {z1_svg}",
                           style="dim"), soft_wrap=True)
    for result in results:
        if not result.as_expected:
            console.print(Text(f"{result.design}: NOT as expected (expected "
                               f"{result.expected or 'no violation'}, found "
                               f"{', '.join(sorted(result.found)) or 'none'})", style="bold red"))
    return outcome


def results_table(results: Sequence[Result]) -> Table:
    from models import registry
    from models.report import verdict

    table = Table(title="wayout check: every design, explored exhaustively", title_justify="left",
                  title_style="bold")
    table.add_column("design", no_wrap=True)
    table.add_column("zoo", no_wrap=True)
    table.add_column("what it is", min_width=50, ratio=1)
    table.add_column("must", no_wrap=True)
    table.add_column("states", justify="right")
    table.add_column("result", no_wrap=True)
    for r in results:
        try:
            zoo = registry.get(r.design).zoo or "-"
        except Exception:
            zoo = "?"
        must = "pass all" if r.expected is None else f"break {r.expected}"
        word = verdict(r)
        table.add_row(r.design, zoo, r.title, must, f"{r.stats.states:,}",
                      Text(word, style="green" if r.as_expected else "bold red"))
    return table


def tell_z1(console: Console, outcome: CheckOutcome) -> None:
    from models.report import format_violation

    z1, fix, own = outcome.result(Z1), outcome.result(Z1_FIX), outcome.result(WAYOUT)
    console.rule(Text("Z1, agents-js #1748: a pool that waits forever on a dead child",
                      style="bold"), align="left")
    if z1 is None or z1.expected is None or (v := z1.violation(z1.expected)) is None:
        console.print(Text(f"{Z1}: no counterexample found: the zoo design was NOT caught",
                           style="bold red"))
    else:
        console.print(Text(
            "Before the fix, agents-js started a child and awaited its initialize() with no "
            "way to learn that the child died meanwhile. The checker finds the shortest path "
            "into that wedge:", style=""), soft_wrap=not console.is_terminal)
        console.print(Panel(Text(format_violation(v)), border_style="red", expand=False,
                            title=f"{Z1}: the counterexample", title_align="left"))
        console.print(Text(
            "In wayout a child's exit is an event in every state, and every state has a "
            "deadline: scene 1 of the chaos below does this to a real pool.", style="dim"),
            soft_wrap=not console.is_terminal)
    if fix is not None:
        good = fix.as_expected
        console.print(Text.assemble(
            ("the fix (PR #1768): ", "bold"),
            ("verified" if good else "NOT verified", "green" if good else "bold red"),
            f": {fix.title}; all {fix.stats.states:,} reachable states explored, "
            "no violation"), soft_wrap=not console.is_terminal)
    if own is not None:
        good = own.as_expected
        console.print(Text.assemble(
            ("wayout's own core: ", "bold"),
            ("verified" if good else "NOT verified", "green" if good else "bold red"),
            f": all {own.stats.states:,} reachable states explored ({own.parameters}) in "
            f"{own.stats.seconds:.1f} s, no violation"), soft_wrap=not console.is_terminal)
