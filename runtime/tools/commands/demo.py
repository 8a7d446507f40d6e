"""``wayout demo``: what wayout is and why to trust it, in under a minute.

Each section is a function of the shared ``Demo`` (arguments, console,
report) that shows its part and records its expectations in the report;
``SECTIONS`` run in order, every one of them even when an earlier one
failed, and the summary closes. The exit status is 0 only if every
expectation held (a zoo design not caught, a job lost, a leak: 1).

Output: a live dashboard on a terminal; plain lines with ``--no-live`` or
when stdout is not a terminal (CI logs, pipes). ``--quick`` shrinks the
model-check bounds and the scene timings, for tests. ``--dask`` runs the
Dask comparison instead (``runtime.tools.demo.dask_compare``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsm
from runtime.tools.commands import diagrams
from runtime.tools.quiet_logs import quiet_pool_logs

if TYPE_CHECKING:
    from rich.console import Console

    from runtime.tools.demo.summary import Report

#: Wide enough for the tables when the output is a pipe (CI logs keep long lines).
PLAIN_WIDTH = 150


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a one-minute tour: lifecycles, model check, a real pool under faults",
        description=(
            "A tour of wayout in under a minute: "
            + "; ".join(f"({i}) {title}" for i, (title, _, _) in enumerate(SECTIONS, 1))
            + ". Exits 0 only if every expectation held (wayout's core verified, every zoo "
            "design caught, every scene's checks, no job lost, no process or descriptor "
            "leaked)."
        ),
    )
    parser.add_argument("--no-live", action="store_true",
                        help="print plain lines instead of the live view (the default when "
                             "stdout is not a terminal)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller model-check bounds and shorter scenes (for tests)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where the diagrams and counterexamples go (default: "
                             f"{diagrams.default_dir()})")
    parser.add_argument("--dask", action="store_true",
                        help="instead of the tour: ProcessPoolExecutor and wayout as the "
                             "executor of Dask workers on a LocalCluster, under the same "
                             "crashes (needs the extra wayout[dask])")
    parser.set_defaults(func=run)


@dataclass
class Demo:
    args: argparse.Namespace
    console: Console
    live: bool
    report: Report

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    @property
    def out(self) -> Path:
        out: Path | None = self.args.out
        return out if out is not None else diagrams.default_dir()


Section = Callable[[Demo], None]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from runtime.tools.demo.summary import Report, print_report

    live = not args.no_live and sys.stdout.isatty()
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PLAIN_WIDTH)
    if getattr(args, "dask", False):
        from runtime.tools.demo import dask_compare

        return dask_compare.main(console)
    demo = Demo(args, console, live, Report())
    intro(demo)
    with quiet_pool_logs(keep=None):
        for number, (title, short, section) in enumerate(SECTIONS, 1):
            console.print()
            console.rule(f"[bold]{number}. {title}", align="left")
            started = time.monotonic()
            try:
                section(demo)
            except Exception as exc:  # one broken section must not hide the others
                demo.report.expect(title, f"the section failed: {type(exc).__name__}: {exc}",
                                   False)
            demo.report.seconds[short] = time.monotonic() - started
    console.print()
    print_report(console, demo.report)
    return 0 if demo.report.ok else 1


def intro(demo: Demo) -> None:
    from rich.panel import Panel
    from rich.text import Text

    text = Text.assemble(
        ("wayout", "bold"), " supervises pools of prewarmed child processes (workers that load "
        "a model once, then serve jobs) so that ", ("no state is without a way out", "bold"),
        ": every state of every child, job and pool has a deadline and somewhere to go when "
        "it passes. Real pools have wedged forever on a child that died while warming up "
        "(LiveKit agents-js #1748); this demo shows how wayout rules that out: the lifecycles, "
        "a model check of every interleaving, then a real pool under deliberate faults.",
    )
    demo.console.print(Panel(text, border_style="cyan"))


# ----------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------


def lifecycles(demo: Demo) -> None:
    from rich import box
    from rich.text import Text

    console = demo.console
    console.print(Text("One table per lifecycle (fsm/lifecycles.py) drives the supervisor, the "
                       "model checker and these diagrams. Every non-final state has a deadline "
                       "and a state to go to when it passes:", style=""),
                  soft_wrap=not console.is_terminal)
    from rich.columns import Columns
    from rich.table import Table

    tables = []
    for spec in fsm.ALL:
        verdict = spec.check().splitlines()[0].split(": ", 1)[-1]
        table = Table(title=f"{spec.name}: {verdict}", title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("state")
        table.add_column("deadline", style="cyan")
        table.add_column("then")
        for state in spec.states:
            if state.timeout is not None:
                table.add_row(state.name, state.timeout, state.on_timeout)
        tables.append(table)
    console.print(Columns(tables, padding=(0, 4)))
    out = demo.out
    written = diagrams.write(out)
    drawn_svg = [f"{_shown(out)}/{spec.name}.svg" for spec in fsm.ALL
                 if (out / f"{spec.name}.svg").is_file()]
    if all(line.startswith("wrote") for line in written) and len(drawn_svg) == len(fsm.ALL):
        written = [f"drew {', '.join(drawn_svg)} (from their .dot sources, rewritten too)"]
    for line in written:
        console.print(Text(f"  {line}", style="dim"), soft_wrap=True)
    drawn = [spec.name for spec in fsm.ALL if (out / f"{spec.name}.dot").is_file()]
    svg = all((out / f"{name}.svg").is_file() for name in drawn)
    demo.report.expect("lifecycle diagrams",
                       f"{len(drawn)} lifecycles checked and drawn to {_shown(out)}/"
                       f"{{{','.join(drawn)}}}.{'svg' if svg else 'dot'}",
                       len(drawn) == len(fsm.ALL))


def model_check(demo: Demo) -> None:
    from runtime.tools.demo import modelcheck
    from runtime.tools.demo.summary import judge_check

    outcome = modelcheck.run(demo.console, quick=demo.quick, out=demo.out)
    judge_check(demo.report, outcome)


def chaos(demo: Demo) -> None:
    from rich.text import Text

    from runtime.tools import leaks
    from runtime.tools.demo import scenes
    from runtime.tools.demo.summary import judge_chaos
    from runtime.tools.demo.timeline import Timeline
    from runtime.tools.demo.views import LiveView, PlainView

    console = demo.console
    console.print(Text(
        "Now a real pool of processes (forkserver), with the deadlines shortened so that every "
        "answer shows within seconds. Each scene injects one fault; everything else you see is "
        "the supervisor's doing.", style=""), soft_wrap=not console.is_terminal)
    view = LiveView(console) if demo.live else PlainView(console)
    timing = scenes.QUICK if demo.quick else scenes.FULL
    if not demo.live:
        # The pauses let a reader take in the live view; printed lines need none.
        timing = dataclasses.replace(timing, pause_s=0.0)
    total = len(scenes.SCENES)
    with tempfile.TemporaryDirectory(prefix="wayout-demo-") as control_dir:
        timeline = Timeline(view.narrate)

        def play() -> scenes.Chaos:
            return asyncio.run(scenes.play(
                timing, timeline, Path(control_dir),
                on_scene=lambda number, scene: view.scene(number, total, scene),
                showing=view.showing))

        outcome, leaked = leaks.measure(play)
    judge_chaos(demo.report, outcome, leaked, total)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


#: (title, short name in the time summary, section), in the order they run.
SECTIONS: list[tuple[str, str, Section]] = [
    ("the lifecycles, drawn from their specs", "diagrams", lifecycles),
    ("model check: wayout's core and the bug zoo", "check", model_check),
    ("chaos: a real pool under faults", "chaos", chaos),
]
