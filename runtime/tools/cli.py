"""The ``wayout`` command line.

Each subcommand lives in its own module ``runtime.tools.commands.<name>`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (a function
of the parsed arguments returning the exit status). To add a command, write the
module and append its name to ``COMMANDS``. Command modules should import
heavy dependencies inside ``func`` so that ``wayout --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from fsm.errors import WayoutError

#: The subcommands, in the order ``wayout --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "diagrams",
    "demo",
    "bench",
    "check",
    "mutants",
    "soak",
)

#: Exit status of a usage error, as argparse and most Unix tools use.
USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one clear line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wayout",
        description=(
            "wayout: a supervisor for pools of prewarmed child processes "
            "in which no state is without a way out."
        ),
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"runtime.tools.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"choose a command: {', '.join(COMMANDS)}")
    try:
        status: int = func(args)
    except WayoutError as exc:
        # Typed errors already say what happened and what to do: one line, no traceback.
        print(f"wayout: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
