"""Helpers of the reliability tests.

They reuse the runtime tests' helpers (short-timeout configs, the leak-checking
runner): ``tests/runtime`` is put on ``sys.path`` here, as pytest does for its
own test directories, so that this directory also runs on its own.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

_RUNTIME_TESTS = str(Path(__file__).resolve().parent.parent / "runtime")
if _RUNTIME_TESTS not in sys.path:
    sys.path.append(_RUNTIME_TESTS)

from runtime_support import (  # noqa: E402
    METHODS,
    cfg,
    live_descendants,
    open_fds,
    pool_test,
    run_checked,
    transitions_of,
    within,
)

from fsm import events as ev  # noqa: E402
from runtime import Pool  # noqa: E402
from runtime.tools.leaks import start_helpers  # noqa: E402

__all__ = [
    "METHODS",
    "CommandLog",
    "cfg",
    "live_descendants",
    "open_fds",
    "pool_test",
    "run_checked",
    "start_helpers",
    "transitions_of",
    "within",
]


class CommandLog:
    """Subscribed to a pool: what the supervisor said about each child and job."""

    def __init__(self, pool: Pool) -> None:
        #: child id -> the reasons of its kills and the log lines naming it
        self.child_notes: dict[int, list[str]] = defaultdict(list)
        #: job id -> the children it was sent to, in order
        self.sent_to: dict[int, list[int]] = defaultdict(list)
        pool.subscribe(self._on_command)

    def _on_command(self, command: ev.Command) -> None:
        if isinstance(command, ev.Kill):
            self.child_notes[command.child].append(f"kill: {command.reason}")
        elif isinstance(command, ev.Log) and command.child is not None:
            self.child_notes[command.child].append(f"log: {command.message}")
        elif isinstance(command, ev.SendJob):
            self.sent_to[command.job].append(command.child)

    def notes(self, child: int) -> str:
        return "\n".join(self.child_notes.get(child, []))
