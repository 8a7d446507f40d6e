"""Run a pool until the process is told to stop, the way a service manager stops it.

``serve_forever(pool)`` returns once the pool is closed. The first SIGTERM or
SIGINT drains it: no new job is accepted, the running and queued ones finish
(within ``drain_timeout``), then it closes. A second signal closes it at once:
every unfinished job fails with ``PoolClosed`` and the children are stopped,
then killed after ``close_timeout``. Kubernetes, systemd and docker send
SIGTERM and, after a grace period, SIGKILL; set ``drain_timeout`` below that
grace period so that the drain, not the SIGKILL, ends the jobs.

A pool that was not started is started here; a pool that closes for another
reason (``pool.close()`` elsewhere) ends the serving too. If the task running
``serve_forever`` is cancelled, the pool is closed before the cancellation
goes on: no child outlives serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from typing import Any

from fsm.errors import PoolClosed, WayoutError
from runtime.pool import Pool

log = logging.getLogger("wayout")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve_forever(pool: Pool, *, signals: Iterable[int] = STOP_SIGNALS) -> None:
    """Serve until a signal of ``signals`` (drain) or a second one (close); return once closed.

    The signal handlers are installed on the running loop (so this must run in
    the main thread) and the previous ones are put back before returning.
    """
    loop = asyncio.get_running_loop()
    drain_asked: asyncio.Future[int] = loop.create_future()
    close_asked: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if not drain_asked.done():
            log.warning("%s: draining the pool (drain_timeout=%gs); send it again to close "
                        "at once", name, pool.config.drain_timeout)
            drain_asked.set_result(signum)
        elif not close_asked.done():
            log.warning("%s again: closing the pool now", name)
            close_asked.set_result(signum)

    restore = _install(loop, tuple(signals), on_signal)
    try:
        await _serve(pool, drain_asked, close_asked)
    except BaseException:
        # Cancelled, or failed: serving ends with the pool closed all the same
        # (bounded by the core's deadlines), and the original error goes on.
        with contextlib.suppress(WayoutError):
            await pool.close()
        raise
    finally:
        restore()


async def _serve(pool: Pool, drain_asked: asyncio.Future[int],
                 close_asked: asyncio.Future[int]) -> None:
    starting: asyncio.Future[None] | None = None
    if pool.status().state == "unstarted":
        starting = asyncio.ensure_future(pool.start())
        # A signal during the start drains at once: start returns when it does.
        await asyncio.wait((starting, drain_asked), return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
    closed = asyncio.ensure_future(_until_closed(pool))
    try:
        await asyncio.wait((drain_asked, closed), return_when=asyncio.FIRST_COMPLETED)
        if drain_asked.done():
            draining = asyncio.ensure_future(pool.drain())
            await asyncio.wait((draining, close_asked), return_when=asyncio.FIRST_COMPLETED)
            if not draining.done():
                await pool.close()
            await draining
        else:
            # Closed by someone else: returns at once, or says why the supervisor stopped.
            await pool.close()
        if starting is not None:
            await starting
    finally:
        closed.cancel()


async def _until_closed(pool: Pool) -> None:
    try:
        await pool.wait_for(lambda st: st.state == "closed")
    except PoolClosed:
        pass  # the supervisor stopped without closing: drain() and close() say why


def _install(loop: asyncio.AbstractEventLoop, signals: tuple[int, ...],
             callback: Any) -> Any:
    """Route ``signals`` to ``callback`` on ``loop``; return a function that undoes it."""
    # What was there before: a Python-level handler (asyncio.run's own SIGINT
    # handler, a user's), and a handler of this loop's (private, read by name).
    loop_handlers: dict[int, Any] = dict(getattr(loop, "_signal_handlers", {}))
    previous = {sig: signal.getsignal(sig) for sig in signals}
    installed: list[int] = []
    try:
        for sig in signals:
            loop.add_signal_handler(sig, callback, sig)
            installed.append(sig)
    except (RuntimeError, ValueError) as exc:
        _restore(loop, installed, previous, loop_handlers)
        raise WayoutError(
            f"serve_forever could not handle {signal.Signals(sig).name} ({exc}); run it in "
            "the main thread's event loop, where the process's signals are delivered"
        ) from exc

    def restore() -> None:
        _restore(loop, installed, previous, loop_handlers)

    return restore


def _restore(loop: asyncio.AbstractEventLoop, installed: list[int],
             previous: dict[int, Any], loop_handlers: dict[int, Any]) -> None:
    for sig in installed:
        loop.remove_signal_handler(sig)
        before = loop_handlers.get(sig)
        if before is not None and hasattr(before, "_callback"):
            loop.add_signal_handler(sig, before._callback, *before._args)
        elif previous.get(sig) is not None:
            signal.signal(sig, previous[sig])
