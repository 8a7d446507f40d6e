"""Health, readiness, status and metrics of a ``Pool`` over HTTP (aiohttp).

``server = await serve(pool)`` listens on 127.0.0.1 (an ephemeral port unless
``port`` is given) in the pool's event loop::

    GET /healthz   200 while the pool's supervisor loop runs, else 503
    GET /readyz    200 while the pool is available (a job submitted now would
                   start without waiting on a failing spawn), else 503;
                   body {"ready": bool, "reason": str} either way
    GET /status    PoolStatus as JSON
    GET /metrics   Prometheus text exposition (runtime.metrics.PoolMetrics)

Liveness and readiness are kept apart on purpose, with Kubernetes' meaning:
a pool that backs off after failing spawns, or drains, is alive (restarting
the process would not help; the core already retries) but not ready (a
dispatcher must stop routing jobs to it).

The handlers run on the pool's loop, so they read the core without locks;
each one is a dictionary walk, never a wait.

The server shares the pool's process, and so its file descriptors: its own
accept loop (``_Acceptor``) bounds what a client can hold (see ``serve``).

Needs the optional extra ``wayout[http]`` (aiohttp, prometheus-client).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import resource
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

try:
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "runtime.http needs aiohttp and prometheus-client: install wayout with the http "
        "extra (pip install 'wayout[http]')"
    ) from exc

from runtime.metrics import PoolMetrics
from runtime.pool import Pool

log = logging.getLogger("wayout")

#: Bounds close(): the handlers never wait, so only idle keep-alive connections remain.
SHUTDOWN_TIMEOUT = 2.0

# --- limits: what keeps a misbehaving client from starving the pool -----------------

#: A request must be received whole (its headers, and a body if it has one)
#: within this many seconds of the connection opening or of the previous
#: response; an idle keep-alive connection is closed after it too.
REQUEST_TIMEOUT = 5.0
#: Connections open at once; one more is closed as soon as it is accepted.
MAX_CONNECTIONS = 64
#: File descriptors left free for the pool: a base, and per child (a child
#: holds three in the parent, its socket, pidfd and sentinel, and a start
#: briefly needs three more). A connection that would eat into them is
#: closed as soon as it is accepted.
FD_RESERVE_BASE = 32
FD_RESERVE_PER_CHILD = 8
#: Seconds between two log lines about refused connections or failing accepts.
LOG_EVERY = 10.0
#: Seconds accepting pauses after accept() failed for lack of resources.
ACCEPT_PAUSE = 0.5
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def open_fds() -> int:
    """How many file descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own
    except OSError:
        return 0  # no /proc: the connection cap still holds


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Throttled:
    """A log line at most every LOG_EVERY seconds, saying how many were held back."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._last: float | None = None
        self._held = 0

    def warning(self, message: str) -> None:
        now = self._loop.time()
        if self._last is not None and now - self._last < LOG_EVERY:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        more = f" ({held} more like it in the last {LOG_EVERY:g}s)" if held else ""
        log.warning("wayout http: %s%s", message, more)


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with a deadline on each request.

    The deadline is armed when the connection opens and again after each
    response; entering a handler (``_Acceptor.middleware``) disarms it. A
    client that sends half a request, or a body slower than REQUEST_TIMEOUT,
    is disconnected when it passes.
    """

    def __init__(self, acceptor: _Acceptor, inner: asyncio.Protocol) -> None:
        self._acceptor = acceptor
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._acceptor.opened(self, transport)
        self.arm()
        self._inner.connection_made(transport)

    def arm(self) -> None:
        self.disarm()
        self._deadline = self._acceptor.loop.call_later(self._acceptor.request_timeout,
                                                        self._expire)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._acceptor.timed_out += 1
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self._transport is not None:
            self._acceptor.closed(self._transport)
        self._transport = None
        self._inner.connection_lost(exc)


class _Acceptor:
    """Accepts connections for aiohttp's protocol factory, within the limits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, request_timeout: float,
                 max_connections: int, fd_reserve: int) -> None:
        self.loop = loop
        self.request_timeout = request_timeout
        self._sock: socket.socket | None = None
        self._factory: Callable[[], asyncio.Protocol] | None = None
        self._max = max_connections
        self._reserve = fd_reserve
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self._connecting = 0  # accepted, not yet handed to aiohttp
        self._log = _Throttled(loop)
        self._resume: asyncio.TimerHandle | None = None
        self._accepting = False
        self._closed = False
        self.refused = 0
        self.timed_out = 0

    def listen(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol]) -> None:
        """Start accepting on ``sock`` (listening, non-blocking) for aiohttp's ``factory``."""
        self._sock = sock
        self._factory = factory
        self._start()

    def _start(self) -> None:
        self._resume = None
        if self._sock is not None and not self._closed and not self._accepting:
            self.loop.add_reader(self._sock.fileno(), self._accept)
            self._accepting = True

    def _pause(self) -> None:
        if self._accepting and self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._accepting = False
        if self._resume is None and not self._closed:
            self._resume = self.loop.call_later(ACCEPT_PAUSE, self._start)

    def _accept(self) -> None:
        assert self._sock is not None
        for _ in range(64):  # then let the loop run other work
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._log.warning(f"accept() failed: {exc.strerror}; pausing accepts for "
                                      f"{ACCEPT_PAUSE:g}s")
                    self._pause()
                    return
                raise
            why = self._refusal()
            if why is not None:
                self.refused += 1
                conn.close()
                self._log.warning(f"refused a connection: {why}")
                continue
            conn.setblocking(False)
            self._connecting += 1
            self.loop.create_task(self._connect(conn))

    def _refusal(self) -> str | None:
        open_ = len(self._connections) + self._connecting
        if open_ >= self._max:
            return f"{open_} open, max_connections={self._max}"
        limit = fd_limit()
        used = open_fds()
        if used + self._reserve > limit:
            return (f"{used} file descriptors open of RLIMIT_NOFILE={limit}, and "
                    f"fd_reserve={self._reserve} are kept for the pool")
        return None

    async def _connect(self, conn: socket.socket) -> None:
        factory = self._factory
        assert factory is not None
        try:
            await self.loop.connect_accepted_socket(
                lambda: _Connection(self, factory()), sock=conn)
        except OSError:
            conn.close()
        finally:
            self._connecting -= 1

    def opened(self, connection: _Connection, transport: asyncio.BaseTransport) -> None:
        self._connections[transport] = connection

    def closed(self, transport: asyncio.BaseTransport) -> None:
        self._connections.pop(transport, None)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        connection = self._connections.get(request.transport)  # type: ignore[arg-type]
        if connection is not None:
            connection.disarm()
        try:
            return await handler(request)
        finally:
            if connection is not None:
                connection.arm()  # for the next request on this connection

    def close(self) -> None:
        self._closed = True
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._sock is not None:
            if self._accepting:
                self.loop.remove_reader(self._sock.fileno())
                self._accepting = False
            self._sock.close()


class HttpServer:
    """A running server; ``close()`` (or leaving ``async with``) stops it."""

    def __init__(self, runner: web.AppRunner, acceptor: _Acceptor, host: str, port: int,
                 metrics: PoolMetrics, owns_metrics: bool) -> None:
        self._runner = runner
        self._acceptor = acceptor
        self.host = host
        self.port = port
        self.metrics = metrics
        self._owns_metrics = owns_metrics
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._acceptor.close()
        try:
            await self._runner.cleanup()
        finally:
            if self._owns_metrics:
                self.metrics.close()

    async def __aenter__(self) -> HttpServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connections(self) -> int:
        """Connections open now."""
        return self._acceptor.open_connections

    @property
    def refused(self) -> int:
        """Connections closed as soon as accepted (max_connections, fd_reserve)."""
        return self._acceptor.refused

    @property
    def timed_out(self) -> int:
        """Connections closed because a request was not received within request_timeout."""
        return self._acceptor.timed_out

    def __repr__(self) -> str:
        return f"<HttpServer {self.url}{' closed' if self._closed else ''}>"


async def serve(
    pool: Pool,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    metrics: PoolMetrics | None = None,
    access_log: logging.Logger | None = None,
    request_timeout: float | None = None,
    max_connections: int | None = None,
    fd_reserve: int | None = None,
) -> HttpServer:
    """Serve ``pool``'s health, readiness, status and metrics; return once listening.

    ``port=0`` picks a free port (read it from ``.port``). Bind to another
    ``host`` only behind a network policy: the endpoints need no credentials.
    Pass ``metrics`` to share a ``PoolMetrics`` created earlier (e.g. before
    ``pool.start()``, to count the first warm-ups); otherwise one is created
    here and closed with the server. ``access_log`` logs each request (off by
    default: probes every few seconds would drown the pool's own logs).

    No client can starve the pool: a request must arrive whole within
    ``request_timeout`` (default ``REQUEST_TIMEOUT``) of the connection
    opening or of the previous response, else the connection is closed; at
    most ``max_connections`` (``MAX_CONNECTIONS``) are open at once; a
    connection that would leave fewer than ``fd_reserve`` file descriptors
    free under ``RLIMIT_NOFILE`` (default ``FD_RESERVE_BASE`` plus
    ``FD_RESERVE_PER_CHILD`` per ``max_children``) is closed as soon as it is
    accepted; a failing ``accept()`` pauses accepting for ``ACCEPT_PAUSE``;
    and each of these is logged at most once every ``LOG_EVERY`` seconds.
    """
    loop = asyncio.get_running_loop()
    if request_timeout is None:
        request_timeout = REQUEST_TIMEOUT
    if max_connections is None:
        max_connections = MAX_CONNECTIONS
    if fd_reserve is None:
        fd_reserve = FD_RESERVE_BASE + FD_RESERVE_PER_CHILD * pool.config.max_children
    acceptor = _Acceptor(loop, request_timeout=request_timeout,
                         max_connections=max_connections, fd_reserve=fd_reserve)
    owns_metrics = metrics is None
    if metrics is None:
        metrics = PoolMetrics(pool)
    app = _app(pool, metrics, acceptor.middleware)
    # aiohttp's own bounds as well: an idle keep-alive connection, and the
    # unread rest of a body after the response.
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=SHUTDOWN_TIMEOUT,
                           keepalive_timeout=request_timeout, lingering_time=request_timeout)
    sock: socket.socket | None = None
    try:
        await runner.setup()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=128)
        sock.setblocking(False)
        bound = sock.getsockname()[1]
        acceptor.listen(sock, runner.server)  # type: ignore[arg-type]
    except BaseException:
        if sock is not None:
            sock.close()
        await runner.cleanup()
        if owns_metrics:
            metrics.close()
        raise
    return HttpServer(runner, acceptor, host, int(bound), metrics, owns_metrics)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _app(pool: Pool, metrics: PoolMetrics, middleware: Any) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        alive = pool.running
        return _json({"alive": alive, "state": pool.status().state}, 200 if alive else 503)

    async def readyz(request: web.Request) -> web.Response:
        st = pool.status()
        if not pool.running:
            ready, reason = False, f"the pool's supervisor loop is not running ({st.reason})"
        else:
            ready, reason = st.available, st.reason
        return _json({"ready": ready, "reason": reason}, 200 if ready else 503)

    async def status(request: web.Request) -> web.Response:
        return _json(pool.status().as_dict())

    async def metrics_text(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[middleware])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics_text)
    return app
