"""Helpers for the runtime tests: configs with short timeouts, and a runner that
checks no process and no file descriptor outlives a test's event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fsm.config import PoolConfig
from runtime import Pool, PoolStatus
from runtime.tools.leaks import live_descendants, open_fds, start_helpers

METHODS = ("fork", "forkserver", "spawn")

T = TypeVar("T")


def cfg(method: str, **overrides: Any) -> PoolConfig:
    """A config with timeouts short enough for tests.

    spawn_timeout stays generous: a spawned interpreter on a loaded 2-core
    machine takes a few hundred milliseconds to say hello.
    """
    settings: dict[str, Any] = {
        "num_idle": 1,
        "max_children": 2,
        "start_method": method,
        "spawn_timeout": 15.0,
        "initialize_timeout": 10.0,
        "ping_interval": 0.5,
        "ping_timeout": 10.0,
        "close_timeout": 1.0,
        "kill_timeout": 2.0,
        "queue_timeout": 20.0,
        "ack_timeout": 5.0,
        "job_timeout": 20.0,
        "start_timeout": 20.0,
        "drain_timeout": 10.0,
        "max_restarts": 10,
        "restart_window": 10.0,
        "backoff_initial": 0.2,
        "backoff_max": 1.0,
    }
    settings.update(overrides)
    return PoolConfig(**settings)


def run_checked(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine in a fresh event loop; afterwards no descendant process
    may be alive and no file descriptor may be left open."""
    start_helpers()
    before = open_fds()
    already = {p.pid for p in live_descendants()}
    result = asyncio.run(factory())
    leaked_procs = [p for p in live_descendants() if p.pid not in already]
    assert not leaked_procs, f"processes outlived the pool: {leaked_procs}"
    after = open_fds()
    leaked_fds = {fd: target for fd, target in after.items() if before.get(fd) != target}
    assert not leaked_fds, f"file descriptors leaked: {leaked_fds}"
    return result


def pool_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Turn an async test into a sync one run by ``run_checked``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run_checked(lambda: fn(*args, **kwargs))

    return wrapper


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await with a bound, so that a bug fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, seconds)


async def wait_status(pool: Pool, predicate: Callable[[PoolStatus], bool],
                      seconds: float = 10.0) -> PoolStatus:
    return await pool.wait_for(predicate, timeout=seconds)


def ready(count: int) -> Callable[[PoolStatus], bool]:
    return lambda st: st.children["ready"] >= count


def transitions_of(pool: Pool, kind: str, ident: int) -> list[tuple[str, str, str]]:
    return [(t.source, t.event, t.dest) for t in pool.transitions()
            if t.kind == kind and t.ident == ident]
