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

Needs the optional extra ``wayout[http]`` (aiohttp, prometheus-client).
"""

from __future__ import annotations

import json
import logging
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

#: Bounds close(): the handlers never wait, so only idle keep-alive connections remain.
SHUTDOWN_TIMEOUT = 2.0


class HttpServer:
    """A running server; ``close()`` (or leaving ``async with``) stops it."""

    def __init__(self, runner: web.AppRunner, host: str, port: int,
                 metrics: PoolMetrics, owns_metrics: bool) -> None:
        self._runner = runner
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

    def __repr__(self) -> str:
        return f"<HttpServer {self.url}{' closed' if self._closed else ''}>"


async def serve(
    pool: Pool,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    metrics: PoolMetrics | None = None,
    access_log: logging.Logger | None = None,
) -> HttpServer:
    """Serve ``pool``'s health, readiness, status and metrics; return once listening.

    ``port=0`` picks a free port (read it from ``.port``). Bind to another
    ``host`` only behind a network policy: the endpoints need no credentials.
    Pass ``metrics`` to share a ``PoolMetrics`` created earlier (e.g. before
    ``pool.start()``, to count the first warm-ups); otherwise one is created
    here and closed with the server. ``access_log`` logs each request (off by
    default: probes every few seconds would drown the pool's own logs).
    """
    owns_metrics = metrics is None
    if metrics is None:
        metrics = PoolMetrics(pool)
    app = _app(pool, metrics)
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
    except BaseException:
        await runner.cleanup()
        if owns_metrics:
            metrics.close()
        raise
    return HttpServer(runner, host, int(bound), metrics, owns_metrics)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def _app(pool: Pool, metrics: PoolMetrics) -> web.Application:
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

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics_text)
    return app
