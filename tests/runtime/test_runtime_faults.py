"""Faults at every child state, with real processes: each ends in a state with a way out."""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import time
from pathlib import Path

import child_funcs as cf
import pytest
from runtime_support import (
    METHODS,
    cfg,
    live_descendants,
    pool_test,
    ready,
    transitions_of,
    within,
)

from fsm import events as ev
from runtime import Pool
from runtime.clock import ManualClock
from runtime.errors import ChildDied, JobFailed, JobTimeout, NoCapacity, WayoutError

pytestmark = pytest.mark.timeout(60)


def exits(pool: Pool, state: str) -> list[int]:
    """Children whose process ended (on its own) while in ``state``."""
    return [t.ident for t in pool.transitions()
            if t.kind == "child" and t.source == state and t.event == "exit"]


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_child_dies_while_spawned(method: str) -> None:
    async with Pool(cfg(method), child_main=cf.main_dies_before_hello_once) as pool:
        assert transitions_of(pool, "child", 0) == [("", "spawn", "spawned"),
                                                    ("spawned", "exit", "killed")]
        assert pool.status().children["ready"] == 1
        assert await pool.run(cf.add, 1, 2) == 3


@pool_test
async def test_child_silent_while_spawned_is_killed_at_spawn_timeout() -> None:
    config = cfg("fork", spawn_timeout=0.3, start_timeout=0.6, queue_timeout=0.8)
    async with Pool(config, child_main=cf.main_hangs_before_hello) as pool:
        assert not pool.status().available
        with pytest.raises(NoCapacity):
            await within(5, pool.run(cf.add, 1, 2))
        assert ("spawned", "timeout", "failed") in transitions_of(pool, "child", 0)
        assert ("failed", "exit", "killed") in transitions_of(pool, "child", 0)


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_initializer_exits(method: str, tmp_path: Path) -> None:
    config = cfg(method, initializer=cf.init_exits_once, initargs=(str(tmp_path),))
    async with Pool(config) as pool:
        assert await pool.run(cf.add, 1, 2) == 3
        assert len(exits(pool, "warming")) == 1
        (dead,) = exits(pool, "warming")
        assert transitions_of(pool, "child", dead)[-1] == ("warming", "exit", "killed")


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_initializer_raises(method: str, tmp_path: Path) -> None:
    config = cfg(method, initializer=cf.init_raises_once, initargs=(str(tmp_path),))
    async with Pool(config) as pool:
        assert await pool.run(cf.add, 1, 2) == 3
        failed = [t.ident for t in pool.transitions() if t.event == "init_error"]
        assert len(failed) == 1
        assert transitions_of(pool, "child", failed[0])[-2:] == [
            ("warming", "init_error", "failed"), ("failed", "exit", "killed")]


@pool_test
async def test_initializer_raising_system_exit_is_an_init_error(tmp_path: Path) -> None:
    config = cfg("fork", initializer=cf.init_system_exit_once, initargs=(str(tmp_path),))
    async with Pool(config) as pool:
        assert await pool.run(cf.add, 1, 2) == 3
        assert [t.event for t in pool.transitions()].count("init_error") == 1


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_initializer_hangs(method: str, tmp_path: Path) -> None:
    config = cfg(method, initialize_timeout=0.5 if method == "fork" else 1.5,
                 initializer=cf.init_hangs_once, initargs=(str(tmp_path),))
    async with Pool(config) as pool:
        assert await within(20, pool.run(cf.add, 1, 2)) == 3
        await within(20, pool.wait_for(
            lambda st: any(t.event == "timeout" and t.source == "warming"
                           for t in pool.transitions())))
        hung = [t.ident for t in pool.transitions() if t.source == "warming"
                and t.event == "timeout"]
        await within(20, pool.wait_for(lambda st: ("failed", "exit", "killed")
                                       in transitions_of(pool, "child", hung[0])))


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_every_initializer_hangs_jobs_get_no_capacity_by_their_deadline(
    method: str,
) -> None:
    config = cfg(method, num_idle=1, max_children=2, initializer=cf.init_hangs_always,
                 initialize_timeout=0.3, start_timeout=0.5, queue_timeout=1.0)
    start = time.monotonic()
    async with Pool(config) as pool:
        entered = time.monotonic() - start
        assert entered < 0.5 + 1.5  # start_timeout bounds entering: never stuck
        assert pool.status().state in ("running", "backing_off")
        # Never warmed, the pool never says it can take a job; once a warm-up
        # has failed, it says why.
        assert not pool.status().available
        await within(10, pool.wait_for(lambda st: "initialize_timeout" in st.reason))
        assert not pool.status().available
        submitted = time.monotonic()
        results = await within(10, asyncio.gather(
            *(pool.run(cf.add, i, i) for i in range(3)), return_exceptions=True))
        waited = time.monotonic() - submitted
        assert all(isinstance(r, NoCapacity) for r in results), results
        assert 1.0 <= waited < 1.0 + 1.5
        assert "queue_timeout=1s" in str(results[0])
        assert not pool.status().available


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_child_dies_while_ready_is_seen_at_once_and_replaced(method: str) -> None:
    # Pings are rare here: only the death event itself can explain a fast reaction.
    config = cfg(method, num_idle=2, max_children=2, ping_interval=5.0, ping_timeout=30.0)
    async with Pool(config) as pool:
        victim, pid = next(iter(pool.status().pids.items()))
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await within(5, pool.wait_for(
            lambda st: ("ready", "exit", "killed") in transitions_of(pool, "child", victim)))
        assert time.monotonic() - killed_at < 1.0
        await within(20, pool.wait_for(ready(2)))
        assert pid not in pool.status().pids.values()
        assert await pool.run(cf.add, 1, 2) == 3


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_idle_child_sigkilled_and_a_job_submitted_at_once_runs_elsewhere(
    method: str,
) -> None:
    config = cfg(method, num_idle=2, max_children=3)
    async with Pool(config) as pool:
        for _ in range(5):
            await within(20, pool.wait_for(ready(2)))
            # The job goes to the first ready child: kill exactly that one.
            first_ready = min(c for c, _ in pool.status().pids.items()
                              if ("ready", "exit", "killed") not in transitions_of(pool, "child", c)
                              and transitions_of(pool, "child", c)[-1][2] == "ready")
            pid = pool.status().pids[first_ready]
            os.kill(pid, signal.SIGKILL)
            ran_on = await within(20, pool.run(cf.pid))
            assert ran_on != pid
        # The submit was handled before the death was seen, so the job really was
        # sent to the dead child first, and came back because it was never acked.
        requeued = [t for t in pool.transitions() if t.kind == "job" and t.event == "requeue"]
        assert requeued


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_child_dies_while_busy(method: str) -> None:
    async with Pool(cfg(method)) as pool:
        with pytest.raises(ChildDied, match="exited with code 9 while busy"):
            await within(10, pool.run(cf.die, 9))
        job = pool.submit(cf.sleep, 30)
        await within(10, pool.wait_for(lambda st: st.jobs["running"] == 1))
        (pid,) = [p for c, p in pool.status().pids.items()
                  if transitions_of(pool, "child", c)[-1][2] == "busy"]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ChildDied, match=f"pid {pid}"):
            await within(5, job)
        assert await pool.run(cf.add, 1, 2) == 3


@pool_test
async def test_an_ack_in_flight_when_the_ack_timeout_fires_still_runs_the_job_once(
        tmp_path: Path) -> None:
    # The parent stalls from the moment the job is sent until user code runs in
    # the child (a listener blocks the loop on the child's signal), and
    # ack_timeout passes meanwhile: the ack is on the socket, unread, when the
    # deadline fires. The job must not go to another child: it already runs.
    started = tmp_path / "started"
    os.mkfifo(started)
    fd = os.open(started, os.O_RDWR | os.O_NONBLOCK)  # our end; the child's open never waits
    clock = ManualClock()
    config = cfg("fork", ping_interval=100.0, ping_timeout=200.0)
    stalls: list[bool] = []

    def stall_until_the_job_runs(command: ev.Command) -> None:
        if isinstance(command, ev.SendJob) and not stalls:
            readable, _, _ = select.select([fd], [], [], 20)  # bounded: a bug fails, not hangs
            stalls.append(bool(readable))
            clock.advance(config.ack_timeout + 0.1)

    try:
        async with Pool(config, clock=clock) as pool:
            pool.subscribe(stall_until_the_job_runs)
            job = pool.submit(cf.say_started_then_sleep, str(started), 60)
            with pytest.raises(ChildDied, match="its ack came after that: job 0 had started, "
                                                "so it is not run again"):
                await within(20, job)
            assert stalls == [True]
            assert transitions_of(pool, "job", job.id) == [
                ("", "submit", "queued"), ("queued", "dispatch", "dispatched"),
                ("dispatched", "timeout", "unacked"), ("unacked", "ack", "running"),
                ("running", "child_died", "failed")]
            # Serving again; and the job's user code ran once, in one child.
            assert await within(20, pool.run(cf.add, 1, 2)) == 3
            assert os.read(fd, 16) == b"!"
    finally:
        os.close(fd)


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_child_dies_while_stopping(method: str) -> None:
    # Its initializer leaves a thread that keeps the process from exiting.
    config = cfg(method, num_idle=2, max_children=2, initializer=cf.init_blocks_exit,
                 close_timeout=30.0)
    pool = Pool(config)
    await pool.start()
    pids = dict(pool.status().pids)
    closing = asyncio.ensure_future(pool.close())
    await within(10, pool.wait_for(lambda st: st.children["stopping"] == 2))
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    await within(5, closing)  # long before close_timeout
    for child in pids:
        assert transitions_of(pool, "child", child)[-2:] == [
            ("ready", "stop", "stopping"), ("stopping", "exit", "killed")]


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_child_that_will_not_stop_is_killed_at_close_timeout(method: str) -> None:
    config = cfg(method, initializer=cf.init_blocks_exit, close_timeout=0.3)
    pool = Pool(config)
    await pool.start()
    (child,) = pool.status().pids
    start = time.monotonic()
    await within(10, pool.close())
    assert 0.3 <= time.monotonic() - start < 0.3 + 2.0
    assert transitions_of(pool, "child", child)[-3:] == [
        ("ready", "stop", "stopping"), ("stopping", "timeout", "failed"),
        ("failed", "exit", "killed")]


@pytest.mark.parametrize("target", [cf.main_sends_garbage, cf.main_sends_oversized])
@pool_test
async def test_a_child_breaking_the_protocol_is_killed_not_the_parent(target: object) -> None:
    config = cfg("fork", num_idle=1, max_children=2, max_message_bytes=4096)
    async with Pool(config, child_main=target) as pool:  # type: ignore[arg-type]
        await within(10, pool.wait_for(
            lambda st: ("failed", "exit", "killed") in transitions_of(pool, "child", 0)))
        assert ("spawned", "kill", "failed") in transitions_of(pool, "child", 0)
        assert await pool.run(cf.add, 1, 2) == 3


async def _faulty_load(pool: Pool, jobs: int, seed: int, in_flight: int) -> dict[str, int]:
    """Run ``jobs`` calls, ``in_flight`` at a time, some of which crash, raise or
    hang; every call must end with its value or the typed error its fault calls
    for, within its bound."""
    rng = random.Random(seed)
    slots = asyncio.Semaphore(in_flight)
    config = pool.config
    bound = config.queue_timeout + 0.2 + config.close_timeout + config.kill_timeout + 3.0
    tally: dict[str, int] = {}

    async def one(i: int) -> None:
        async with slots:
            await call(i)

    async def call(i: int) -> None:
        roll = rng.random()
        start = time.monotonic()
        try:
            if roll < 0.03:
                kind = "die"
                await pool.run(cf.die, 1)
            elif roll < 0.06:
                kind = "raise"
                await pool.run(cf.boom)
            elif roll < 0.08:
                kind = "hang"
                await pool.run(cf.sleep, 30, timeout=0.2)
            else:
                kind = "ok"
                assert await pool.run(cf.add, i, 1) == i + 1
                outcome = "value"
        except ChildDied:
            assert kind == "die"
            outcome = "ChildDied"
        except JobFailed:
            assert kind == "raise"
            outcome = "JobFailed"
        except JobTimeout:
            assert kind == "hang"
            outcome = "JobTimeout"
        except NoCapacity:
            outcome = "NoCapacity"
        except WayoutError as exc:  # typed but unexpected: say which
            raise AssertionError(f"job {i} ({kind}) raised {exc!r}") from exc
        assert time.monotonic() - start < bound, f"job {i} ({kind}) outlived its bound"
        tally[outcome] = tally.get(outcome, 0) + 1

    await asyncio.gather(*(one(i) for i in range(jobs)))
    return tally


@pool_test
async def test_a_thousand_calls_with_faults_each_end_typed_within_bound() -> None:
    config = cfg("fork", num_idle=2, max_children=4, max_restarts=10_000, queue_timeout=10.0,
                 close_timeout=0.5)
    async with Pool(config) as pool:
        tally = await within(90, _faulty_load(pool, 1000, seed=5, in_flight=1000))
        assert sum(tally.values()) == 1000
        assert tally.get("ChildDied", 0) > 0 and tally.get("JobTimeout", 0) > 0
        assert tally["value"] > 800
        assert await pool.run(cf.add, 1, 1) == 2
    assert not live_descendants()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", [
    # make test runs the fork case (the fastest); -m slow runs all three.
    pytest.param(m, marks=[pytest.mark.ci_slice] if m == "fork" else []) for m in METHODS
])
@pool_test
async def test_thousands_of_calls_with_faults_under_every_start_method(method: str) -> None:
    config = cfg(method, num_idle=2, max_children=4, max_restarts=10_000, queue_timeout=20.0,
                 close_timeout=0.5)
    async with Pool(config) as pool:
        tally = await within(240, _faulty_load(pool, 3000, seed=11, in_flight=8))
        assert sum(tally.values()) == 3000
        # Few enough in flight that every job finds a child before queue_timeout.
        assert "NoCapacity" not in tally
        assert tally["value"] > 2500


@pool_test
async def test_a_stopped_child_misses_its_pongs_and_is_killed() -> None:
    config = cfg("fork", num_idle=2, max_children=3, ping_interval=0.1, ping_timeout=0.5)
    async with Pool(config) as pool:
        victim, pid = next(iter(pool.status().pids.items()))
        os.kill(pid, signal.SIGSTOP)
        await within(5, pool.wait_for(lambda st: pid not in st.pids.values()))
        assert transitions_of(pool, "child", victim)[-2:] == [
            ("ready", "timeout", "failed"), ("failed", "exit", "killed")]
        assert await pool.run(cf.add, 1, 2) == 3


@pool_test
async def test_memory_over_the_limit_gets_the_child_killed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Sampled from spawn on: the child may be killed before it is even ready.
    config = cfg("fork", num_idle=1, max_children=1, ping_interval=0.1, memory_limit_mb=1.0,
                 start_timeout=0.5)
    async with Pool(config) as pool:
        await within(10, pool.wait_for(lambda st: any(
            t.kind == "child" and t.event == "kill" for t in pool.transitions())))
    assert "over memory_limit_mb=1" in caplog.text
