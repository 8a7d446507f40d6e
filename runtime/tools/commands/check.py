"""``wayout check``: model-check wayout's core and the bug zoo.

``models`` does the checking and returns data; this module runs the models
(in parallel processes when there are several), shows progress, prints the
summary table and the counterexample traces, and renders each counterexample
to ``diagrams/counterexample-<model>.svg``.

Exit status: without ``--model``, 0 only if every result is as expected
(wayout's design verified, every zoo design caught by the property it
breaks); with ``--model``, 1 if the model breaks any property (or could not
be explored completely).

A user's own work: ``--design FILE.py:CLASS`` (or ``MODULE:CLASS``) checks a
``Design`` subclass with ``--param NAME=VALUE`` for its constructor (exit 0
when it behaves as its ``expected`` says); ``--config FILE.py:NAME`` checks
wayout's core with the ordering of a ``PoolConfig``'s durations, and the
config's hazards (``models.config_check``). Loading is
``runtime.tools.loader``'s.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsm.errors import WayoutError
from runtime.tools.commands.argtypes import natural, positive
from runtime.tools.commands.diagrams import default_dir
from runtime.tools.model_runner import (
    DEFAULT_MAX_STATES,
    run_models,
    violations_to_show,
    write_counterexample,
)

if TYPE_CHECKING:
    from rich.console import Console

    from models.design import Design
    from models.explorer import Result, Violation
    from models.registry import Bounds

def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="model-check wayout's core and the bug zoo (no state without a way out)",
        description=(
            "Explore every reachable state of wayout's supervisor core in a model of "
            "the world (children that answer, hang, die; timers; a user), and of each "
            "historical design in the bug zoo. Checks safety invariants, that every "
            "state has a way out to quiescence, and that no respawn loop runs without "
            "time passing. Without --model: run them all; exit 0 only if wayout's "
            "design passes and every zoo design is caught."
        ),
    )
    parser.add_argument("--model", metavar="NAME", help="check only this model (see --list)")
    parser.add_argument("--design", metavar="FILE.py:CLASS|MODULE:CLASS",
                        help="check your own Design subclass, from a file or an importable "
                        "module; exit 0 if it behaves as its `expected` says (None: every "
                        "property holds), 1 otherwise")
    parser.add_argument("--config", metavar="FILE.py:NAME|MODULE:NAME",
                        help="check wayout's core with the ordering of your own PoolConfig's "
                        "durations, and its settings for hazards; exit 1 on any")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter of --design's class, typed from its constructor "
                        "(repeat for several)")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    parser.add_argument("--children", type=positive, metavar="N",
                        help="max_children of wayout's model (default 2)")
    parser.add_argument("--jobs", type=natural, metavar="M",
                        help="jobs the user submits (wayout default 3; zoo default 1)")
    parser.add_argument("--restarts", type=natural, metavar="R",
                        help="max_restarts of wayout's model (default 1)")
    parser.add_argument("--max-states", type=positive, default=DEFAULT_MAX_STATES,
                        metavar="N", help=f"stop a model after N states "
                        f"(default {DEFAULT_MAX_STATES:,}); liveness is then not checked")
    parser.add_argument("--workers", type=positive, default=2, metavar="N",
                        help="processes to run models in (default 2)")
    parser.add_argument("--summary", action="store_true",
                        help="print the summary table only, no traces")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="where counterexample pictures go (default: diagrams/; with --design "
                        "or --config: the current folder)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the results to FILE as JSON (for scripts; "
                        "wayout mutants reads it)")
    parser.add_argument("--bench", action="store_true",
                        help="measure instead of check: states/s of each model on one core, "
                        "time to catch each zoo bug, wall time of the full check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from models import registry

    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped (make demo, CI): wide enough that the summary table is not truncated.
        console = Console(highlight=False, width=150)
    if args.list:
        print_list(console)
        return 0
    if args.design is not None and args.config is not None:
        raise UsageError("--design and --config check different things: give one")
    if args.design is not None:
        return run_user_design(console, args)
    if args.config is not None:
        return run_user_config(console, args)
    if args.param:
        raise UsageError("--param NAME=VALUE goes with --design (a model of the registry "
                         "takes --children, --jobs, --restarts)")
    bounds = registry.Bounds(children=args.children, jobs=args.jobs, restarts=args.restarts)
    if args.bench:
        bench(console, bounds, workers=args.workers, max_states=args.max_states)
        return 0
    names = [registry.get(args.model).name] if args.model else registry.names()
    results = run_models(names, bounds, workers=args.workers, max_states=args.max_states,
                         console=console)
    out: Path = args.out if args.out is not None else default_dir()
    print_summary(console, results)
    for result in results:
        shown = violations_to_show(result)
        if shown and not args.summary:
            print_violations(console, result, shown)
        if shown:
            console.print(write_counterexample(out, result, shown[0]))
    for result in results:
        # A design that must break a property may stop at it; one that must
        # pass every property is verified only by a complete search.
        if not result.stats.complete and result.expected is None:
            console.print(f"[bold red]{result.design}: {result.stats.stopped} after "
                          f"{result.stats.states:,} states: not verified[/]")
    if args.model:
        ok = not results[0].violations and results[0].stats.complete
    else:
        ok = all(r.as_expected for r in results)
        verdict = ("every result as expected: wayout's design verified, every zoo design "
                   "caught" if ok else "NOT every result is as expected")
        console.print(f"[bold {'green' if ok else 'red'}]{verdict}[/]")
    if args.json is not None:
        write_json(args.json, results, ok)
    return 0 if ok else 1


def write_json(path: Path, results: Sequence[Result], ok: bool) -> None:
    """The verdict and each model's result, as data: what the exit status
    decided, and for each violation its property, message and trace."""
    import json

    data = {
        "ok": ok,
        "models": [
            {
                "model": r.design,
                "expected": r.expected,
                "as_expected": r.as_expected,
                "complete": r.stats.complete,
                "states": r.stats.states,
                "transitions": r.stats.transitions,
                "seconds": r.stats.seconds,
                "checked": list(r.checked),
                "violations": [
                    {"property": v.property, "message": v.message, "trace": v.trace.labels}
                    for v in r.violations
                ],
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


class UsageError(WayoutError):
    """Options of ``wayout check`` that do not go together."""


def load_design(ref: str, params: Sequence[str]) -> Design[Any]:
    """The ``Design`` that ``--design ref`` names, built with ``--param`` values."""
    from models.design import Design
    from runtime.tools.loader import WrongKind, instantiate, load

    obj = load(ref, "--design")
    if isinstance(obj, type) and issubclass(obj, Design):
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise WrongKind(f"--design {ref!r}: {obj.__name__} is abstract: it does not "
                            f"define {missing}")
        design: Design[Any] = instantiate(obj, params)
        return design
    if isinstance(obj, Design):
        if params:
            raise WrongKind(f"--design {ref!r} names an instance of {type(obj).__name__}, "
                            "which takes no --param: name the class instead")
        return obj
    raise WrongKind(f"--design {ref!r} is {_kind(obj)}, not a models.design.Design subclass "
                    "(see models/README.md, \"Check your own design\")")


def _kind(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    return f"a {type(obj).__name__}"


def run_user_design(console: Console, args: argparse.Namespace) -> int:
    from runtime.tools.model_runner import run_design

    if args.model or args.children or args.jobs is not None or args.restarts is not None:
        raise UsageError("--design takes its bounds as --param NAME=VALUE, not --model, "
                         "--children, --jobs or --restarts")
    design = load_design(args.design, args.param)
    result = run_design(design, max_states=args.max_states, console=console)
    print_summary(console, [result])
    shown = violations_to_show(result)
    if shown and not args.summary:
        print_violations(console, result, shown)
    if not result.violations and result.expected is not None:
        console.print(f"[bold red]{result.design}: expected to break {result.expected}, "
                      "but every property holds[/]")
    elif result.expected is not None and not result.as_expected:
        console.print(f"[bold red]{result.design}: expected to break {result.expected}, "
                      f"but breaks {', '.join(sorted(result.found))}[/]")
    if shown:
        out: Path = args.out if args.out is not None else Path.cwd()
        params = result.parameters or " ".join(args.param)
        console.print(write_counterexample(out, result, shown[0], params))
    if not result.stats.complete:
        console.print(f"[bold red]{result.design}: stopped at {result.stats.states:,} "
                      f"states (--max-states): not verified[/]")
    if args.json is not None:
        write_json(args.json, [result], result.as_expected)
    return 0 if result.as_expected else 1


#: The bounds of wayout's model under a user's config: one child, one job (the
#: user's durations take more distinct values than the model's own, and each
#: distinct relative deadline is a state).
CONFIG_CHILDREN = 1
CONFIG_JOBS = 1
CONFIG_MAX_STATES = 500_000


def run_user_config(console: Console, args: argparse.Namespace) -> int:
    from fsm.config import PoolConfig
    from models.config_check import hazard_designs, model_of
    from models.wayout import WayoutDesign
    from runtime.tools.loader import WrongKind, load
    from runtime.tools.model_runner import run_design

    if args.model or args.param or args.children or args.jobs is not None:
        raise UsageError("--config takes no --model, --param, --children or --jobs")
    config = load(args.config, "--config")
    if not isinstance(config, PoolConfig):
        raise WrongKind(f"--config {args.config!r} is {_kind(config)}, not a "
                        "fsm.config.PoolConfig")
    mapped = model_of(config, children=CONFIG_CHILDREN)
    core = WayoutDesign(jobs=CONFIG_JOBS, config=mapped, cancel=False, drain=False)
    core.name = "wayout-your-config"
    core.title = "wayout's core with the ordering of your durations"
    durations = ", ".join(f"{n} {getattr(config, n):g}->{getattr(mapped, n):g}"
                          for n in ("spawn_timeout", "initialize_timeout", "queue_timeout",
                                    "ack_timeout", "job_timeout", "ping_interval",
                                    "ping_timeout"))
    console.print(f"your durations as the model's integers (same order and ties): {durations}",
                  style="dim")
    max_states = min(args.max_states, CONFIG_MAX_STATES)
    designs: list[Design[Any]] = [*hazard_designs(config), core]
    results = [run_design(d, max_states=max_states, console=console) for d in designs]
    print_summary(console, results)
    out: Path = args.out if args.out is not None else Path.cwd()
    for result in results:
        if result.violations and not args.summary:
            print_violations(console, result, list(result.violations))
        if result.violations:
            console.print(write_counterexample(out, result, result.violations[0]))
        if not result.stats.complete:
            console.print(f"[bold red]{result.design}: stopped at {result.stats.states:,} "
                          f"states (--max-states): not verified[/]")
    ok = all(r.as_expected for r in results)
    hazards = [v for r in results[:-1] for v in r.violations]
    console.print(f"[bold {'green' if ok else 'red'}]"
                  + (f"{args.config}: no hazard found" if ok else
                     f"{args.config}: {len(hazards)} hazard(s)"
                     + ("" if results[-1].as_expected else ", and the core model fails")) + "[/]")
    if args.json is not None:
        write_json(args.json, results, ok)
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------

#: The performance goals of `wayout check` (states/s is reported, not judged: it
#: measures the core as much as the search).
TARGET_CATCH_S = 1.0
TARGET_FULL_CHECK_S = 60.0


def bench(console: Console, bounds: Bounds, *, workers: int, max_states: int) -> None:
    """Measure, report against the goals, decide nothing (a benchmark, not a test)."""
    import os
    import time

    from rich.table import Table

    from models import registry
    from models.explorer import explore

    table = Table(title="wayout check --bench (each model alone, one core)",
                  title_justify="left")
    for col in ("model", "states", "transitions", "search s", "states/s", "total s", "goal",
                "met"):
        table.add_column(col, justify="left" if col in ("model", "goal") else "right")
    branching: float | None = None
    for name in registry.names():
        design = registry.build(name, bounds)
        started = time.perf_counter()
        result = explore(design, max_states=max_states)
        total = time.perf_counter() - started  # search, liveness checks and traces
        s = result.stats
        if name == "wayout" and s.states:
            branching = s.transitions / s.states
        met: bool | None = None
        goal = "-"
        if design.expected is not None:
            goal = f"caught in < {TARGET_CATCH_S:g} s"
            met = result.as_expected and total < TARGET_CATCH_S
        table.add_row(name, f"{s.states:,}", f"{s.transitions:,}", f"{s.seconds:.3f}",
                      f"{s.states_per_second:,.0f}", f"{total:.3f}", goal,
                      "-" if met is None else "[green]yes[/]" if met else "[red]no[/]")
    console.print(table)
    if branching is not None:
        clone_us, handle_us = core_floor()
        per_state = (clone_us + handle_us) * branching
        console.print(
            f"floor per successor of wayout's model: clone the core {clone_us:.1f} µs + its "
            f"cheapest event (a pong from a ready child) {handle_us:.1f} µs; at "
            f"{branching:.1f} transitions per state the core alone caps the search near "
            f"{1e6 / per_state:,.0f} states/s on this machine")
    started = time.perf_counter()
    results = run_models(registry.names(), bounds, workers=workers, max_states=max_states,
                         console=console)
    wall = time.perf_counter() - started
    ok = all(r.as_expected for r in results)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(
        f"full check, {workers} worker processes: {wall:.1f} s wall "
        f"(goal < {TARGET_FULL_CHECK_S:g} s: {'met' if wall < TARGET_FULL_CHECK_S else 'NOT met'}"
        f"), every result as expected: {ok}; {os.cpu_count()} CPUs, load average {load:.1f}"
    )


def core_floor(repeat: int = 20_000) -> tuple[float, float]:
    """What the cheapest successor of wayout's model costs, in µs: cloning the
    core, and the core handling its cheapest event (a pong from a ready child).

    Every transition the checker explores pays at least this much, because
    each one runs the real core; multiplied by the transitions per state it
    bounds the states/s any search over that core can reach on this machine.
    """
    import time

    from fsm import events as ev
    from models.wayout import WayoutDesign

    design = WayoutDesign()
    world = design.initial()
    for wanted in (ev.Spawned, ev.Hello, ev.Ready):  # to a pool with one ready child
        event = next(e for e in design.events(world) if type(e) is wanted)
        world = design.apply(world, event).state
    core = world.core
    pong = ev.Pong(now=core.now, child=next(iter(core.children)))
    cores = [core.clone() for _ in range(repeat)]
    started = time.perf_counter()
    for _ in range(repeat):
        core.clone()
    clone_s = time.perf_counter() - started
    started = time.perf_counter()
    for c in cores:
        c.handle(pong)
    handle_s = time.perf_counter() - started
    return clone_s / repeat * 1e6, handle_s / repeat * 1e6


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def print_list(console: Console) -> None:
    from rich.table import Table

    from models import registry

    table = Table(title="models (wayout check --model NAME)", title_justify="left")
    for col in ("name", "zoo", "must", "bounds", "what"):
        table.add_column(col)
    for entry in registry.MODELS:
        d = entry.design
        must = "pass every property" if d.expected is None else f"break {d.expected}"
        table.add_row(entry.name, entry.zoo or "-", must, ", ".join(entry.takes) or "-",
                      d.title)
    console.print(table)


def print_summary(console: Console, results: Sequence[Result]) -> None:
    from rich.table import Table

    from models.report import verdict

    table = Table(title="wayout check", title_justify="left")
    for col, justify in (("model", "left"), ("expected", "left"), ("found", "left"),
                         ("states", "right"), ("transitions", "right"), ("depth", "right"),
                         ("seconds", "right"), ("states/s", "right"), ("result", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        s = r.stats
        word = verdict(r)
        style = "green" if r.as_expected else "bold red"
        table.add_row(
            r.design, r.expected or "none", ", ".join(sorted(r.found)) or "-",
            f"{s.states:,}", f"{s.transitions:,}", str(s.depth), f"{s.seconds:.2f}",
            # A rate over a few milliseconds measures nothing.
            f"{s.states_per_second:,.0f}" if s.seconds >= 0.1 else "-", f"[{style}]{word}[/]",
        )
    console.print(table)
    for r in results:
        if r.parameters:
            console.print(f"  {r.design}: {r.parameters}", style="dim")


def print_violations(console: Console, result: Result, shown: Sequence[Violation]) -> None:
    from models.report import format_violation

    console.rule(f"{result.design}: {result.title}")
    for v in shown:
        console.print(format_violation(v), markup=False)
    others = [v.property for v in result.violations if v not in shown]
    if others:
        console.print(f"(also breaks: {', '.join(others)})", style="dim")
