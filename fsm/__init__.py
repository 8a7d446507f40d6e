"""wayout's sans-I/O core: lifecycle specs, their machines, and the supervisor core.

Nothing in this package performs I/O, starts a timer or a thread: deadlines are
data, and ``runtime`` is the only place that touches processes and clocks.
"""

from __future__ import annotations

from fsm.errors import ConfigError, InvalidTransition, SpecError, WayoutError
from fsm.lifecycles import ALL, CHILD, JOB, POOL
from fsm.spec import TIMEOUT, Edge, LifecycleSpec, State, Transition


def check_all() -> str:
    """The check report of every shipped lifecycle (they validated when imported)."""
    return "\n\n".join(spec.check() for spec in ALL)


__all__ = [
    "ALL",
    "CHILD",
    "JOB",
    "POOL",
    "TIMEOUT",
    "ConfigError",
    "Edge",
    "InvalidTransition",
    "LifecycleSpec",
    "SpecError",
    "State",
    "Transition",
    "WayoutError",
    "check_all",
]
