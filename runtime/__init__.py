"""wayout's runtime: the only place that touches processes, sockets and clocks.

It performs the commands of the sans-I/O core (``fsm``) and feeds it events;
every decision about children and jobs is the core's. The three things the
runtime decides itself are about its own I/O, and ``runtime.pool`` says why
each cannot be the core's: warming the forkserver before the first spawn,
ending everything when its own driver stops without the core having closed
the pool, and reading the core's transition records to release a process
object it was told is abandoned or to stop once the pool is closed. The
public API::

    from runtime import Pool, PoolConfig, JobHandle, PoolStatus
    from runtime import Executor       # concurrent.futures.Executor, thread-safe
    from runtime.errors import WayoutError, NoCapacity, JobTimeout, ...

The names are loaded on first use, so that ``import runtime.tools.cli`` (the
``wayout`` command) does not pay for the process machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsm.config import PoolConfig
    from runtime.executor import Executor
    from runtime.pool import JobHandle, Pool, PoolStatus, TransitionRecord
    from runtime.serve import serve_forever

_EXPORTS = {
    "Executor": "runtime.executor",
    "Pool": "runtime.pool",
    "JobHandle": "runtime.pool",
    "PoolStatus": "runtime.pool",
    "TransitionRecord": "runtime.pool",
    "PoolConfig": "fsm.config",
    "serve_forever": "runtime.serve",
}

__all__ = ["Executor", "JobHandle", "Pool", "PoolConfig", "PoolStatus", "TransitionRecord",
           "serve_forever"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
