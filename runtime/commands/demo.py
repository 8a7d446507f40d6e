"""``wayout demo``: show what wayout does, section by section.

Each section is a function of the parsed arguments that prints its part and
returns an exit status; ``SECTIONS`` runs in order and the demo stops at the
first section that fails. To extend the demo, write a section and append it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import fsm
from runtime.commands import diagrams

Section = Callable[[argparse.Namespace], int]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="regenerate the diagrams and print the lifecycle check report",
        description="A tour of wayout: " + "; ".join(title for title, _ in SECTIONS) + ".",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for title, section in SECTIONS:
        print(f"== {title} ==")
        status = section(args)
        print()
        if status != 0:
            return status
    return 0


def lifecycle_diagrams(args: argparse.Namespace) -> int:
    for line in diagrams.write(diagrams.default_dir()):
        print(line)
    return 0


def spec_check(args: argparse.Namespace) -> int:
    print(fsm.check_all())
    return 0


SECTIONS: list[tuple[str, Section]] = [
    ("lifecycle diagrams, drawn from the specs", lifecycle_diagrams),
    ("lifecycle specs: every non-final state has a timeout and a way out", spec_check),
]
