"""``wayout bench``: wayout against ProcessPoolExecutor and loky, in one run.

Prints the machine and a table of p50/p99 figures with the targets of issue 8;
``--json FILE`` writes every figure. ``--quick`` takes fewer samples (under two
minutes); the full run stays under ten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure wayout against ProcessPoolExecutor and loky",
        description=(
            "Measure wayout's warm round trip, dispatch latency, throughput, death "
            "detection, replenish, hung warm-up penalty, scale, deadlines at scale (a "
            "100,000-job queued burst, 40,000 queue timeouts at once) and model checker speed, "
            "side by side with ProcessPoolExecutor and loky (the 'bench' extra) in one "
            "process run, and judge them against the project's targets."
        ),
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer samples: under two minutes")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write every figure to FILE as JSON")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown (for README) instead of rich")
    parser.add_argument("--from-json", type=Path, default=None, metavar="FILE",
                        help="measure nothing: print the table of a run saved with --json")
    parser.add_argument("--only", default=None, metavar="GROUPS",
                        help="comma-separated measure groups: latency, death, warmup, "
                             "scale, deadlines, checker (default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.tools.bench import plan, runner, table
    from runtime.tools.bench.results import Report

    if args.from_json is not None:
        saved = Report.from_dict(json.loads(args.from_json.read_text(encoding="utf-8")))
        if args.markdown:
            print(table.markdown(saved))
        else:
            table.render(saved)
        return 0

    chosen = plan.QUICK if args.quick else plan.FULL
    only = None
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [n for n in only if n not in runner.GROUPS]
        if unknown:
            print(f"wayout bench: unknown group(s) {', '.join(unknown)}; choose from "
                  f"{', '.join(runner.GROUPS)}", file=sys.stderr)
            return 2

    def progress(group: str) -> None:
        print(f"wayout bench ({chosen.name}): measuring {group} ...", file=sys.stderr,
              flush=True)

    report = runner.run(chosen, only, progress=progress)
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        print(table.markdown(report))
    else:
        table.render(report)
    return 1 if report.errors else 0
