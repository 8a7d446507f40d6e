"""``wayout soak``: many jobs through a real pool while faults are injected.

``runtime.tools.soak`` runs the soak and returns a report; this module parses the
arguments, shows progress, and prints the summary (rich tables when rich is
installed, plain text otherwise). Exit status 1 on any lost, wrong or wedged
job, leaked process or descriptor, trace violation or unrecovered fault.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from runtime.tools.commands.argtypes import natural, positive

if TYPE_CHECKING:
    from runtime.tools.soak import SoakReport


def register(subparsers: Any) -> None:
    from fsm.config import START_METHODS

    parser = subparsers.add_parser(
        "soak",
        help="run many jobs on real processes with random faults; fail on any loss, leak "
             "or wedge",
        description=(
            "Submit --jobs jobs to a real pool, --concurrency at a time. With probability "
            "--fault-rate a job carries a fault: it raises, calls os._exit, segfaults, "
            "hangs past its timeout or writes garbage on its control socket; or a random "
            "child is SIGKILLed or SIGSTOPped from outside as it is submitted. Every job "
            "must end with the outcome its fault calls for, within its bound, the pool must "
            "recover to num_idle ready children after each fault, and nothing may leak. "
            "Exit status 1 otherwise."
        ),
    )
    parser.add_argument("--jobs", type=natural, default=1000, metavar="N",
                        help="jobs to run (default 1000)")
    parser.add_argument("--fault-rate", type=_rate, default=0.1, metavar="R",
                        help="probability that a job carries a fault (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed: the same seed injects the same faults (default 0)")
    parser.add_argument("--start-method", choices=START_METHODS, default=None,
                        help="how children start (default: PoolConfig's, forkserver)")
    parser.add_argument("--concurrency", type=positive, default=8, metavar="C",
                        help="jobs in flight at once (default 8)")
    parser.add_argument("--num-idle", type=positive, default=2, metavar="K",
                        help="warm children the pool keeps idle (default 2)")
    parser.add_argument("--faults", default=None, metavar="KINDS",
                        help="comma-separated fault kinds to inject (default: all of "
                             "raise,exit,segfault,hang,garbage,sigkill,sigstop)")
    parser.add_argument("--verbose", action="store_true",
                        help="show the pool's warnings (each child failure) as they happen")
    parser.set_defaults(func=run)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import contextlib

    from runtime.tools.quiet_logs import quiet_pool_logs

    # Each injected fault is a child failure the pool logs as a warning; the
    # summary counts them. Errors (a child not reaped) still show.
    with quiet_pool_logs() if not args.verbose else contextlib.nullcontext():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from fsm.config import PoolConfig
    from runtime.tools import soak

    faults = soak.FAULT_KINDS if args.faults is None else tuple(
        f.strip() for f in args.faults.split(",") if f.strip())
    settings = soak.SoakSettings(
        jobs=args.jobs, fault_rate=args.fault_rate, seed=args.seed,
        start_method=args.start_method or PoolConfig().start_method,
        concurrency=args.concurrency, num_idle=args.num_idle, faults=faults,
    )
    console = _console()
    if console is not None and console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress("soak", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("jobs", total=settings.jobs)
            report = asyncio.run(soak.run_soak(
                settings, progress=lambda done, total: bar.update(task, completed=done)))
    else:
        report = asyncio.run(soak.run_soak(settings))
    if console is not None:
        print_rich(console, report)
    else:
        sys.stdout.write(format_plain(report))
    return 0 if report.ok else 1


def _console() -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)  # piped: do not truncate the tables
    return console


def _headline(report: SoakReport) -> str:
    s = report.settings
    rate = report.settings.jobs / report.elapsed if report.elapsed > 0 else 0.0
    return (f"wayout soak: {s.jobs:,} jobs, fault rate {s.fault_rate:g}, seed {s.seed}, "
            f"{s.start_method}, concurrency {s.concurrency}, num_idle {s.num_idle}: "
            f"{report.elapsed:.1f} s ({rate:,.0f} jobs/s)")


RECOVERY_NOTE = ("time to recover: from the fault (a job fault: its ack, or its timeout for a "
                 "hang; an outside signal: when sent) until the faulty child is gone and "
                 "num_idle children are ready")


def fault_rows(report: SoakReport) -> list[tuple[str, ...]]:
    """kind, injected, children lost, recovered, p50, p99, max (times in ms)."""
    from runtime.tools.soak import FAULT_KINDS, percentile

    rows: list[tuple[str, ...]] = []
    for kind in FAULT_KINDS:
        if kind not in report.settings.faults:
            continue
        injected = str(report.faults.get(kind, 0))
        if kind == "raise":
            rows.append((kind, injected, "0", "-", "-", "-", "-"))
            continue
        times = sorted(report.recovery.get(kind, []))
        unrecovered = report.unrecovered.get(kind, 0)
        recovered = f"{len(times)}" + (f" ({unrecovered} NOT)" if unrecovered else "")
        stats = [f"{percentile(times, q) * 1000:,.1f}" if times else "-" for q in (50, 99, 100)]
        rows.append((kind, injected, str(report.struck.get(kind, 0)), recovered, *stats))
    return rows


def verdict_rows(report: SoakReport) -> list[tuple[str, str]]:
    return [
        ("jobs lost (never settled)", str(len(report.lost))),
        ("jobs with a wrong outcome", str(len(report.wrong))),
        ("jobs wedged (past their bound)", str(len(report.wedged))),
        ("processes leaked after close", str(len(report.leaked_processes))),
        ("file descriptors leaked after close", str(len(report.leaked_fds))),
        ("trace records / violations",
         f"{report.trace_records:,} / {len(report.trace_violations)}"),
        ("children started / killed by the supervisor",
         f"{report.children_started:,} / {report.kills:,}"),
    ]


def _verdict(report: SoakReport) -> str:
    if report.ok:
        return ("OK: every job settled truthfully within its bound, the pool recovered from "
                "every fault, nothing leaked, the trace conforms to the specs")
    return "FAILED:\n  " + "\n  ".join(report.problems())


def format_plain(report: SoakReport) -> str:
    lines = [_headline(report), "", "jobs by outcome:"]
    for outcome, n in report.outcomes.most_common():
        lines.append(f"  {outcome:<14} {n:>8,}")
    lines += ["", "faults and time to recover (ms):",
              f"  {'fault':<10} {'injected':>8} {'child lost':>10} {'recovered':>10} "
              f"{'p50':>9} {'p99':>9} {'max':>9}"]
    for kind, injected, lost, recovered, p50, p99, top in fault_rows(report):
        lines.append(f"  {kind:<10} {injected:>8} {lost:>10} {recovered:>10} {p50:>9} "
                     f"{p99:>9} {top:>9}")
    lines += [RECOVERY_NOTE, "", "verdict:"]
    for what, value in verdict_rows(report):
        lines.append(f"  {what:<45} {value}")
    lines += ["", _verdict(report), ""]
    return "\n".join(lines)


def print_rich(console: Any, report: SoakReport) -> None:
    from rich.table import Table

    console.print(f"[bold]{_headline(report)}[/]")
    outcomes = Table(title="jobs by outcome", title_justify="left")
    outcomes.add_column("outcome")
    outcomes.add_column("jobs", justify="right")
    for outcome, n in report.outcomes.most_common():
        outcomes.add_row(outcome, f"{n:,}")
    console.print(outcomes)
    faults = Table(title="faults and time to recover", title_justify="left")
    for name, justify in (("fault", "left"), ("injected", "right"),
                          ("child lost", "right"), ("recovered", "right"),
                          ("p50 ms", "right"), ("p99 ms", "right"), ("max ms", "right")):
        faults.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in fault_rows(report):
        faults.add_row(*row)
    console.print(faults)
    console.print(f"[dim]{RECOVERY_NOTE}[/]")
    verdict = Table(title="verdict", title_justify="left", show_header=False)
    verdict.add_column("what")
    verdict.add_column("count", justify="right")
    for what, value in verdict_rows(report):
        verdict.add_row(what, value)
    console.print(verdict)
    console.print(f"[bold {'green' if report.ok else 'red'}]{_verdict(report)}[/]")
