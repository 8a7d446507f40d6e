"""``wayout mutants``: seed single faults into the core and see if ``wayout check`` catches them.

The catalogue (runtime/tools/mutation/catalogue.py) lists targeted faults in
fsm/core.py and fsm/lifecycles.py: dropped commands, skipped requeues,
deadlines armed wrong, wrong durations, restart intensity off by one, wrong
availability, wrong guards, double settlement, tie orders, redirected table
edges. Each runs in its own copy of the tree (the working tree is never
written): first the unmutated copy must pass ``wayout check``, then each
mutant is checked, ``--workers`` at a time.

Exit status 0 only if every real (non-equivalent) mutant is caught by
``wayout check`` alone and every mutant the catalogue calls equivalent
survives. ``--unit`` also runs the core's fast unit tests on each mutant,
for comparison (not part of the verdict).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.tools.commands.argtypes import natural, positive

if TYPE_CHECKING:
    from rich.console import Console

    from runtime.tools.mutation import engine
    from runtime.tools.mutation.catalogue import Mutant
    from runtime.tools.mutation.engine import Outcome, Verdict


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mutants",
        help="seed single faults into the core; report which ones wayout check catches",
        description=(
            "Apply each fault of the catalogue (fsm/core.py, fsm/lifecycles.py) to a copy of "
            "the tree, one at a time, and run wayout check on it. Exit 0 only if wayout check "
            "alone catches every real fault and every fault the catalogue calls equivalent "
            "survives."
        ),
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    parser.add_argument("--class", dest="klass", metavar="CLASS",
                        help="run only the mutants of this class (see --list)")
    parser.add_argument("--workers", type=positive, default=2, metavar="N",
                        help="mutants checked at a time, one process each (default 2)")
    parser.add_argument("--unit", action="store_true",
                        help="also run the core's fast unit tests on each mutant (for "
                        "comparison; about 5 s more each)")
    parser.add_argument("--timeout", type=positive, default=300, metavar="S",
                        help="give up on one mutant's check after S seconds (default 300; "
                        "a mutant whose state space never ends is reported as a timeout)")
    parser.add_argument("--children", type=positive, metavar="N",
                        help="wayout check --children for each mutant")
    parser.add_argument("--jobs", type=natural, metavar="M",
                        help="wayout check --jobs for each mutant")
    parser.add_argument("--restarts", type=natural, metavar="R",
                        help="wayout check --restarts for each mutant")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip checking the unmutated copy first")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write the results to FILE as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="write the results to FILE as a Markdown table (models/README)")
    parser.set_defaults(func=run)


def select(ids: Sequence[str], klass: str | None) -> list[Mutant]:
    from runtime.tools.mutation.catalogue import CATALOGUE, CLASSES
    from runtime.tools.mutation.engine import MutantError

    known = {m.id for m in CATALOGUE}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise MutantError(f"no mutant named {', '.join(unknown)} (see wayout mutants --list)")
    if klass is not None and klass not in CLASSES:
        raise MutantError(f"no class {klass!r}; the classes are: {', '.join(CLASSES)}")
    return [m for m in CATALOGUE
            if (not ids or m.id in ids) and (klass is None or m.klass == klass)]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from runtime.tools.mutation import engine

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    mutants = select(args.ids, args.klass)
    if args.list:
        print_list(console, mutants)
        return 0
    engine.check_applies(mutants)
    check_args: list[str] = []
    for flag, value in (("--children", args.children), ("--jobs", args.jobs),
                        ("--restarts", args.restarts)):
        if value is not None:
            check_args += [flag, str(value)]
    with engine.snapshot(engine.Options(check_args=tuple(check_args), unit=args.unit,
                                        timeout=float(args.timeout))) as options:
        return _run(console, mutants, options, args)


def _run(console: Console, mutants: Sequence[Mutant], options: engine.Options,
         args: argparse.Namespace) -> int:
    from runtime.tools.mutation import engine

    if not args.no_baseline:
        console.print("checking the unmutated tree first ...")
        base = engine.baseline(options)
        if base.outcome != engine.SURVIVED:
            console.print(f"[bold red]the unmutated tree does not pass wayout check "
                          f"({base.outcome}: {base.by} {base.property} {base.message}): "
                          "every mutant would look caught; fix that first[/]")
            return 1
        console.print(f"the unmutated tree passes ({base.seconds:.0f} s)")
    console.print(f"{len(mutants)} mutants, {args.workers} at a time")
    count = [0]

    def done(o: Outcome) -> None:
        count[0] += 1
        console.print(f"[{count[0]}/{len(mutants)}] {o.mutant.id}: {_check_text(o.check)}"
                      + ("" if o.unit is None else f"; unit tests {_unit_text(o.unit)}"),
                      markup=False)

    outcomes = engine.run_all(mutants, options, workers=args.workers, done=done)
    print_table(console, outcomes)
    ok = print_verdict(console, outcomes)
    if args.json is not None:
        write_json(args.json, outcomes)
    if args.markdown is not None:
        args.markdown.write_text(markdown(outcomes), encoding="utf-8")
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def _check_text(v: Verdict) -> str:
    from runtime.tools.mutation.engine import CAUGHT

    if v.outcome == CAUGHT:
        return f"caught by {v.by}: {v.property}"
    return v.outcome + (f" ({v.message})" if v.message else "")


def _unit_text(v: Verdict) -> str:
    from runtime.tools.mutation.engine import CAUGHT

    return f"caught ({v.by})" if v.outcome == CAUGHT else v.outcome


def print_list(console: Console, mutants: Sequence[Mutant]) -> None:
    from rich.table import Table

    table = Table(title=f"wayout mutants: {len(mutants)} in the catalogue", title_justify="left")
    for col in ("id", "class", "where", "fault", "equivalent"):
        table.add_column(col)
    for m in mutants:
        table.add_row(m.id, m.klass, f"{m.file}:{m.scope}", m.description,
                      m.equivalent or "-")
    console.print(table)


def print_table(console: Console, outcomes: Sequence[Outcome]) -> None:
    from rich.table import Table

    unit = any(o.unit is not None for o in outcomes)
    table = Table(title="wayout mutants", title_justify="left")
    for col in ("mutant", "class", "wayout check", "violation", *(["unit tests"] if unit else []),
                "result"):
        table.add_column(col)
    for o in outcomes:
        v = o.check
        style = "green" if o.as_expected else "bold red"
        word = ("equivalent" if o.mutant.equivalent and o.as_expected else
                "caught" if o.as_expected else
                "caught, but listed equivalent" if o.mutant.equivalent else "NOT CAUGHT")
        row = [o.mutant.id, o.mutant.klass,
               v.outcome if not v.by else f"{v.outcome} ({v.by})",
               f"{v.property}: {v.message}" if v.property else v.message]
        if unit:
            row.append("-" if o.unit is None else _unit_text(o.unit))
        row.append(f"[{style}]{word}[/]")
        table.add_row(*row)
    console.print(table)


def print_verdict(console: Console, outcomes: Sequence[Outcome]) -> bool:
    from runtime.tools.mutation.engine import CAUGHT, score

    caught, real = score(outcomes)
    equivalent = [o for o in outcomes if o.mutant.equivalent]
    console.print(f"wayout check alone caught {caught} of {real} real mutants; "
                  f"{len(equivalent)} listed as equivalent")
    if any(o.unit is not None for o in outcomes):
        units = sum(1 for o in outcomes if not o.mutant.equivalent and o.unit is not None
                    and o.unit.outcome == CAUGHT)
        console.print(f"the fast unit tests caught {units} of {real}")
    for o in equivalent:
        mark = "survived" if o.as_expected else "[bold red]CAUGHT: not equivalent, fix the " \
            "catalogue[/]"
        console.print(f"  equivalent {o.mutant.id} ({mark}): {o.mutant.equivalent}")
    missed = [o for o in outcomes if not o.mutant.equivalent and o.check.outcome != CAUGHT]
    for o in missed:
        console.print(f"  [bold red]NOT CAUGHT[/] {o.mutant.id} ({o.check.outcome}): "
                      f"{o.mutant.description}", markup=True)
    ok = all(o.as_expected for o in outcomes)
    console.print(f"[bold {'green' if ok else 'red'}]"
                  + ("every real mutant caught by wayout check alone" if ok else
                     f"{len(missed)} real mutants NOT caught") + "[/]")
    return ok


def write_json(path: Path, outcomes: Sequence[Outcome]) -> None:
    import json
    from dataclasses import asdict

    from runtime.tools.mutation.engine import score

    caught, real = score(outcomes)
    data = {
        "caught": caught,
        "real": real,
        "mutants": [
            {"mutant": asdict(o.mutant), "check": asdict(o.check),
             "unit": None if o.unit is None else asdict(o.unit), "as_expected": o.as_expected}
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def markdown(outcomes: Sequence[Outcome]) -> str:
    """The results as the Markdown table models/README.md carries."""
    from runtime.tools.mutation.engine import CAUGHT, score

    unit = any(o.unit is not None for o in outcomes)
    caught, real = score(outcomes)
    head = ["mutant", "class", "caught by", "violation", *(["unit tests"] if unit else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes:
        v = o.check
        if o.mutant.equivalent:
            by = "equivalent" + ("" if v.outcome != CAUGHT else f" (but caught by {v.by})")
            what = o.mutant.equivalent
        elif v.outcome == CAUGHT:
            by, what = v.by, f"`{v.property}`: {v.message}"
        else:
            by, what = f"**not caught** ({v.outcome})", o.mutant.description
        row = [f"`{o.mutant.id}`", o.mutant.klass, by, what.replace("|", "\\|")]
        if unit:
            row.append("-" if o.unit is None else _unit_text(o.unit))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"Score: `wayout check` alone caught **{caught} of {real}** real mutants "
                 f"({sum(1 for o in outcomes if o.mutant.equivalent)} equivalent).")
    return "\n".join(lines) + "\n"
