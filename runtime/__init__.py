"""wayout's runtime: the only place that touches processes, sockets and clocks.

It performs the commands of the sans-I/O core (``fsm``) and feeds it events;
it takes no decisions of its own. The public API::

    from runtime import Pool, PoolConfig, JobHandle, PoolStatus
    from runtime.errors import WayoutError, NoCapacity, JobTimeout, ...

The names are loaded on first use, so that ``import runtime.tools.cli`` (the
``wayout`` command) does not pay for the process machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsm.config import PoolConfig
    from runtime.pool import JobHandle, Pool, PoolStatus, TransitionRecord
    from runtime.serve import serve_forever

_EXPORTS = {
    "Pool": "runtime.pool",
    "JobHandle": "runtime.pool",
    "PoolStatus": "runtime.pool",
    "TransitionRecord": "runtime.pool",
    "PoolConfig": "fsm.config",
    "serve_forever": "runtime.serve",
}

__all__ = ["JobHandle", "Pool", "PoolConfig", "PoolStatus", "TransitionRecord", "serve_forever"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
