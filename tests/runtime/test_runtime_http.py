"""runtime.http: health, readiness, status and metrics of a real Pool, over real HTTP.

Every test runs an aiohttp server on 127.0.0.1 (an ephemeral port) and asks it
with an aiohttp client, against a pool of real (forked) children. State
changes are awaited with ``pool.wait_for`` (checked after every supervisor
step), never with sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import child_funcs as cf
import http_funcs as hf
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from runtime_support import cfg, pool_test, wait_status, within

from runtime import Pool
from runtime.http import HttpServer, serve


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get(session: aiohttp.ClientSession, server: HttpServer,
              path: str) -> tuple[int, str, str]:
    async with session.get(server.url + path) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def get_json(session: aiohttp.ClientSession, server: HttpServer,
                   path: str) -> tuple[int, Any]:
    status, content_type, body = await get(session, server, path)
    assert content_type.startswith("application/json"), content_type
    return status, json.loads(body)


def sample(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """The value of one series in a Prometheus text exposition (``default`` if absent)."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{inner}}}" if labels else name) + r" (\S+)$"
    for line in text.splitlines():
        match = re.match(pattern, line)
        if match:
            return float(match.group(1))
    if default is not None:
        return default
    raise AssertionError(f"no series {name}{labels} in the exposition")


JOB_SUBMITTED = {"lifecycle": "job", "src": "none", "dst": "queued"}


@pytest.mark.timeout(30)
@pool_test
async def test_health_status_and_metrics_of_a_running_pool() -> None:
    async with Pool(cfg("fork", num_idle=1, max_children=2)) as pool, \
            await serve(pool) as server, client() as session:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        await wait_status(pool, lambda st: st.available)

        assert await get_json(session, server, "/healthz") == (
            200, {"alive": True, "state": "running"})
        code, body = await get_json(session, server, "/readyz")
        assert code == 200 and body["ready"] is True and body["reason"]

        code, body = await get_json(session, server, "/status")
        assert code == 200
        # Through JSON, as a client sees it (the pids' keys become strings).
        assert body == json.loads(json.dumps(pool.status().as_dict()))
        assert body["children"]["ready"] == 1

        code, content_type, text = await get(session, server, "/metrics")
        assert code == 200 and content_type == CONTENT_TYPE_LATEST
        for name in ("wayout_children", "wayout_jobs", "wayout_available",
                     "wayout_transitions_total", "wayout_job_duration_seconds",
                     "wayout_child_warmup_seconds", "wayout_child_kills_total",
                     "wayout_jobs_settled_total"):
            assert f"\n# TYPE {name} " in text, name
        assert sample(text, "wayout_children", state="ready") == 1
        assert sample(text, "wayout_available") == 1
        submitted_before = sample(text, "wayout_transitions_total", 0.0, **JOB_SUBMITTED)

        assert await within(10, pool.run(cf.add, 2, 3)) == 5
        _, _, text = await get(session, server, "/metrics")
        assert sample(text, "wayout_transitions_total", **JOB_SUBMITTED) == submitted_before + 1
        assert sample(text, "wayout_job_duration_seconds_count", outcome="done") == 1
        assert sample(text, "wayout_jobs_settled_total", outcome="done", error="none") == 1

        status, _, _ = await get(session, server, "/nowhere")
        assert status == 404


@pytest.mark.timeout(30)
@pool_test
async def test_readyz_is_503_while_every_initializer_hangs_and_200_once_they_recover(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "hang"
    config = cfg(
        "fork", num_idle=1, max_children=1, max_jobs_per_child=1,
        initializer=hf.init_hangs_while_marker, initargs=(str(marker),),
        initialize_timeout=0.5, backoff_initial=0.1, backoff_max=0.5,
    )
    async with Pool(config) as pool, await serve(pool) as server, client() as session:
        await wait_status(pool, lambda st: st.available)
        code, body = await get_json(session, server, "/readyz")
        assert code == 200 and body["ready"] is True

        # From now on every initializer hangs. The one job recycles the ready
        # child (max_jobs_per_child=1); its replacement never gets ready.
        marker.touch()
        assert await within(10, pool.run(cf.add, 1, 1)) == 2
        st = await wait_status(
            pool, lambda st: not st.available and "initialize_timeout" in st.reason)
        code, body = await get_json(session, server, "/readyz")
        assert code == 503
        assert body["ready"] is False and "initialize_timeout" in body["reason"], body
        # Not ready, but alive: restarting the process would not help.
        code, body = await get_json(session, server, "/healthz")
        assert code == 200 and body["alive"] is True
        _, _, text = await get(session, server, "/metrics")
        assert sample(text, "wayout_available") == 0
        assert sample(text, "wayout_child_kills_total", reason="initialize_timeout") >= 1
        assert st.children["ready"] == 0

        marker.unlink()  # the next child's initializer returns
        await wait_status(pool, lambda st: st.available and st.children["ready"] == 1)
        code, body = await get_json(session, server, "/readyz")
        assert code == 200 and body["ready"] is True, body


@pytest.mark.timeout(30)
@pool_test
async def test_readyz_is_503_from_the_start_of_a_drain_and_healthz_after_close(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "hold"
    marker.touch()
    pool = Pool(cfg("fork", num_idle=1, max_children=1))
    async with pool, await serve(pool) as server, client() as session:
        await wait_status(pool, lambda st: st.available)
        job = pool.submit(hf.block_while_marker, str(marker))
        await wait_status(pool, lambda st: st.jobs["running"] == 1)

        drain = asyncio.create_task(pool.drain())
        await wait_status(pool, lambda st: st.state == "draining")
        code, body = await get_json(session, server, "/readyz")
        assert code == 503 and body["ready"] is False and "draining" in body["reason"], body
        assert (await get_json(session, server, "/healthz"))[0] == 200

        marker.unlink()  # the accepted job finishes, then the pool closes
        assert await within(10, job) == "released"
        await within(10, drain)

        code, body = await get_json(session, server, "/healthz")
        assert code == 503 and body == {"alive": False, "state": "closed"}
        code, body = await get_json(session, server, "/readyz")
        assert code == 503 and body["ready"] is False
        code, body = await get_json(session, server, "/status")
        assert code == 200 and body["state"] == "closed"


@pytest.mark.timeout(30)
@pool_test
async def test_a_server_closes_and_frees_its_port() -> None:
    async with Pool(cfg("fork", num_idle=1, max_children=1)) as pool:
        server = await serve(pool)
        port = server.port
        async with client() as session:
            assert (await get(session, server, "/healthz"))[0] == 200
        await server.close()
        await server.close()  # idempotent
        with pytest.raises(aiohttp.ClientConnectionError):
            async with client() as session:
                await get(session, server, "/healthz")
        # The port is free again: another server can take it.
        async with await serve(pool, port=port) as again:
            assert again.port == port


@pytest.mark.timeout(30)
def test_importing_runtime_does_not_need_the_http_extra() -> None:
    code = (
        "import sys, runtime, runtime.pool, runtime.tools.cli; "
        "runtime.Pool; "
        "loaded = sorted(m for m in ('aiohttp', 'prometheus_client') if m in sys.modules); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=25, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
