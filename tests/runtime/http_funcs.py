"""Initializers and jobs for the health and metrics tests, run inside children.

Module-level so that children can unpickle them by name. They wait on marker
files the test creates and removes: the test decides when a child hangs and
when it recovers, without timing assumptions.
"""

from __future__ import annotations

import os
import time


def init_hangs_while_marker(marker: str) -> None:
    """An initializer that hangs (until killed) if ``marker`` exists when it runs."""
    if os.path.exists(marker):
        time.sleep(3600)


def block_while_marker(marker: str, limit: float = 30.0) -> str:
    """A job that runs until ``marker`` is removed (or ``limit`` seconds pass)."""
    end = time.monotonic() + limit
    while os.path.exists(marker) and time.monotonic() < end:
        time.sleep(0.01)  # the child's own work loop; the test waits on pool status
    return "released"
