"""No descendant outlives its child: every kill path ends what a job started.

A job starts three grandchildren that a plain SIGKILL of its child would
leave running (reparented to init): one in the child's process group that
ignores SIGTERM, one that left the group with ``setsid``, and one daemonised
(its parent exited, and it has a session of its own). After each way the
supervisor ends a child (job timeout, cancel, ping timeout, memory limit,
close with a job that ignores its cancellation, close of an idle child), none
of them may be alive ``kill_timeout`` later.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import child_funcs as cf
import psutil
import pytest
from runtime_support import cfg, pool_test, within
from script_support import survivors

from fsm.errors import ChildDied, JobCancelled, JobTimeout, PoolClosed
from runtime import Pool

pytestmark = pytest.mark.timeout(60)

KILL_TIMEOUT = 2.0

_started: list[psutil.Process] = []


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Whatever the outcome, kill what the job started (a failing run leaves them)."""
    yield
    for proc in _started:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    _started.clear()


class Pids:
    """The fifo a job writes its grandchildren's pids to, read on the event loop."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "pids")
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)

    async def read(self) -> list[psutil.Process]:
        loop = asyncio.get_running_loop()
        data = b""
        try:
            while not data.endswith(b"\n"):
                readable = asyncio.Event()
                loop.add_reader(self._fd, readable.set)
                try:
                    await within(30, readable.wait())
                finally:
                    loop.remove_reader(self._fd)
                try:
                    data += os.read(self._fd, 4096)
                except BlockingIOError:
                    pass
        finally:
            os.close(self._fd)
        procs = [psutil.Process(int(pid)) for pid in data.split()]
        _started.extend(procs)
        assert len(procs) == 3 and all(p.is_running() for p in procs)
        return procs


def config(method: str = "forkserver", **overrides: Any) -> Any:
    settings: dict[str, Any] = {"close_timeout": 0.5, "kill_timeout": KILL_TIMEOUT}
    settings.update(overrides)
    return cfg(method, **settings)


def assert_all_gone(procs: list[psutil.Process]) -> None:
    left = survivors(procs, KILL_TIMEOUT)
    assert not left, f"descendants outlived their child: {left}"


@pytest.mark.parametrize("method", ["forkserver", "fork", "spawn"])
@pool_test
async def test_a_job_timeout_kills_everything_the_job_started(method: str,
                                                               tmp_path: Path) -> None:
    pids = Pids(tmp_path)
    async with Pool(config(method)) as pool:
        job = pool.submit(cf.start_descendants, pids.path, "ignore_cancel", timeout=1.0)
        procs = await pids.read()
        with pytest.raises(JobTimeout):
            await within(20, job)
        assert_all_gone(procs)
        assert await within(20, pool.run(cf.add, 1, 2)) == 3


@pool_test
async def test_a_cancel_the_job_ignores_kills_everything_it_started(tmp_path: Path) -> None:
    pids = Pids(tmp_path)
    async with Pool(config()) as pool:
        job = pool.submit(cf.start_descendants, pids.path, "ignore_cancel")
        procs = await pids.read()
        job.cancel()
        with pytest.raises(JobCancelled):
            await within(20, job)
        assert_all_gone(procs)


@pool_test
async def test_a_ping_timeout_kills_everything_the_stopped_child_started(
        tmp_path: Path) -> None:
    pids = Pids(tmp_path)
    async with Pool(config(ping_interval=0.2, ping_timeout=1.0)) as pool:
        job = pool.submit(cf.start_descendants, pids.path, "stop")
        procs = await pids.read()
        with pytest.raises(ChildDied, match="ping_timeout"):
            await within(20, job)
        assert_all_gone(procs)


@pool_test
async def test_the_memory_limit_kills_everything_the_child_started(tmp_path: Path) -> None:
    pids = Pids(tmp_path)
    async with Pool(config(ping_interval=0.1, memory_limit_mb=120.0)) as pool:
        job = pool.submit(cf.start_descendants, pids.path, "hold_memory", 200)
        procs = await pids.read()
        with pytest.raises(ChildDied, match="memory_limit_mb"):
            await within(20, job)
        assert_all_gone(procs)


@pool_test
async def test_closing_with_a_job_that_ignores_its_cancellation_kills_everything(
        tmp_path: Path) -> None:
    pids = Pids(tmp_path)
    async with Pool(config()) as pool:
        job = pool.submit(cf.start_descendants, pids.path, "ignore_cancel")
        procs = await pids.read()
        await within(20, pool.close())
        with pytest.raises(PoolClosed):
            await job
    assert_all_gone(procs)


@pytest.mark.parametrize("method", ["forkserver", "fork", "spawn"])
@pool_test
async def test_closing_a_pool_ends_what_a_finished_job_left_running(method: str,
                                                                  tmp_path: Path) -> None:
    # The job returned; its child is idle and stops gracefully at close (no
    # kill): the child itself ends what is below it before it exits.
    pids = Pids(tmp_path)
    async with Pool(config(method)) as pool:
        job = pool.submit(cf.start_descendants, pids.path)
        procs = await pids.read()
        assert await within(20, job) == [p.pid for p in procs]
    assert_all_gone(procs)
