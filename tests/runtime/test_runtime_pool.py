"""Pool: the public API over real processes, bad input, cancellation, drain and close."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import child_funcs as cf
import pytest
from runtime_support import (
    METHODS,
    cfg,
    live_descendants,
    pool_test,
    ready,
    run_checked,
    transitions_of,
    wait_status,
    within,
)

from fsm import events as ev
from fsm.core import SupervisorCore
from fsm.errors import ConfigError
from runtime import JobHandle, Pool, PoolConfig, PoolStatus
from runtime.clock import ManualClock
from runtime.errors import (
    InvalidJob,
    JobCancelled,
    JobFailed,
    JobTimeout,
    PoolClosed,
    WayoutError,
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_values_errors_and_the_pool_stays_healthy(method: str) -> None:
    config = cfg(method, num_idle=2, max_children=3, initializer=cf.init_ok)
    async with Pool(config) as pool:
        st = pool.status()
        assert isinstance(st, PoolStatus)
        assert st.state == "running" and st.available and st.children["ready"] == 2
        assert await pool.run(cf.add, 2, 3) == 5
        assert await pool.run(cf.async_add, 2, 3) == 5
        assert await pool.run(cf.read_init_marker) == "done"

        with pytest.raises(JobFailed) as raised:
            await pool.run(cf.boom, "kaput")
        assert raised.value.remote_type == "ValueError"
        assert raised.value.remote_message == "kaput"
        assert "in boom" in raised.value.remote_traceback
        assert raised.value.job_id is not None

        with pytest.raises(JobFailed) as exited:
            await pool.run(cf.exit_job, 3)
        assert exited.value.remote_type == "SystemExit"

        with pytest.raises(JobFailed, match="cannot be pickled"):
            await pool.run(cf.unpicklable_result)

        # Concurrency: more jobs than children, all answered.
        results = await within(30, asyncio.gather(*(pool.run(cf.add, i, i) for i in range(50))))
        assert results == [2 * i for i in range(50)]
        assert pool.status().available


@pytest.mark.timeout(30)
@pool_test
async def test_bad_input_is_refused_at_the_call_and_the_pool_stays_healthy() -> None:
    async with Pool(cfg("fork", max_message_bytes=64 * 1024)) as pool:
        with pytest.raises(InvalidJob, match="cannot be pickled"):
            pool.submit(lambda: 1)
        with pytest.raises(InvalidJob, match="cannot be pickled"):
            pool.submit(cf.echo, open(os.devnull))
        with pytest.raises(InvalidJob, match="not callable"):
            pool.submit(42)  # type: ignore[arg-type]
        with pytest.raises(InvalidJob, match="max_message_bytes=65536"):
            pool.submit(cf.echo, b"x" * 100_000)
        with pytest.raises(JobFailed, match="ResultTooLarge"):
            await pool.run(cf.big_result, 100_000)
        for bad in (0, -1.0, float("inf"), float("nan"), True, "1", 10**400):
            with pytest.raises(ConfigError):
                pool.submit(cf.add, 1, 2, timeout=bad)  # type: ignore[arg-type]
        assert pool.status().jobs == dict.fromkeys(pool.status().jobs, 0)
        assert await pool.run(cf.add, 1, 2) == 3


def test_invalid_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        PoolConfig(num_idle=5, max_children=2)
    with pytest.raises(ConfigError):
        PoolConfig(start_method="vfork")
    with pytest.raises(ConfigError, match="cannot be pickled"):
        Pool(PoolConfig(initializer=lambda: None))
    with pytest.raises(ConfigError):
        Pool({"num_idle": 1})  # type: ignore[arg-type]
    assert issubclass(ConfigError, WayoutError)


@pytest.mark.timeout(30)
@pool_test
async def test_submit_outside_a_running_pool_is_refused() -> None:
    pool = Pool(cfg("fork"))
    with pytest.raises(PoolClosed, match="not started"):
        pool.submit(cf.add, 1, 2)
    assert pool.status().state == "unstarted"
    async with pool:
        pass
    with pytest.raises(PoolClosed, match="closed"):
        pool.submit(cf.add, 1, 2)
    with pytest.raises(WayoutError, match="starts once"):
        await pool.start()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_a_job_past_its_timeout_raises_job_timeout_within_its_bound(method: str) -> None:
    async with Pool(cfg(method)) as pool:
        for fn in (cf.sleep, cf.async_sleep):
            start = time.monotonic()
            with pytest.raises(JobTimeout, match=r"timeout of 0\.3s"):
                await within(10, pool.run(fn, 30, timeout=0.3))
            assert 0.3 <= time.monotonic() - start < 0.3 + 2.0
        assert await pool.run(cf.add, 1, 1) == 2


@pytest.mark.timeout(30)
@pool_test
async def test_a_job_ignoring_its_cancellation_is_killed_after_close_timeout() -> None:
    async with Pool(cfg("fork", close_timeout=0.5)) as pool:
        start = time.monotonic()
        with pytest.raises(JobTimeout, match="killed"):
            await within(10, pool.run(cf.sleep_ignoring_cancel, 30, timeout=0.3))
        assert 0.8 <= time.monotonic() - start < 0.8 + 2.0
        assert await pool.run(cf.add, 1, 1) == 2


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_cancel_a_running_job(method: str) -> None:
    async with Pool(cfg(method)) as pool:
        for fn in (cf.sleep, cf.async_sleep):
            job = pool.submit(fn, 30)
            assert isinstance(job, JobHandle)
            await within(10, pool.wait_for(lambda st: st.jobs["running"] == 1))
            assert job.state == "running"
            job.cancel()
            with pytest.raises(JobCancelled):
                await within(5, job)
            assert job.state == "cancelled" and job.done()
        assert await pool.run(cf.add, 1, 1) == 2


@pytest.mark.timeout(30)
@pool_test
async def test_cancel_a_queued_job_and_cancelling_the_caller_cancels_the_job() -> None:
    async with Pool(cfg("fork", num_idle=1, max_children=1)) as pool:
        busy = pool.submit(cf.sleep, 30)
        queued = pool.submit(cf.add, 1, 2)
        assert queued.state == "submitted"
        await within(10, pool.wait_for(lambda st: st.jobs["running"] == 1))
        assert queued.state == "queued"
        queued.cancel()
        with pytest.raises(JobCancelled, match="before it started"):
            await within(5, queued)

        caller = asyncio.ensure_future(pool.run(cf.sleep, 30))
        await asyncio.sleep(0)  # let it submit
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        busy.cancel()
        with pytest.raises(JobCancelled):
            await within(5, busy)
        # The cancelled caller's job was cancelled too, so the pool is idle again.
        await within(10, pool.wait_for(lambda st: sum(st.jobs.values()) == 0))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_close_while_jobs_run_settles_them_with_pool_closed(method: str) -> None:
    pool = Pool(cfg(method, num_idle=2, max_children=2, close_timeout=0.5))
    async with pool:
        jobs = [pool.submit(cf.sleep, 30) for _ in range(2)]
        queued = pool.submit(cf.add, 1, 2)
        await within(10, pool.wait_for(lambda st: st.jobs["running"] == 2))
        start = time.monotonic()
    assert time.monotonic() - start < 0.5 + 2.0 + 2.0  # close_timeout + kill_timeout
    for job in [*jobs, queued]:
        with pytest.raises(PoolClosed):
            await job
    assert pool.status().state == "closed"
    assert not live_descendants()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_drain_lets_running_jobs_finish_and_refuses_new_ones(method: str) -> None:
    pool = Pool(cfg(method, num_idle=2, max_children=2))
    async with pool:
        jobs = [pool.submit(cf.sleep, 0.3) for _ in range(2)]
        await within(10, pool.wait_for(lambda st: st.jobs["running"] == 2))
        drained = asyncio.ensure_future(pool.drain())
        await within(10, pool.wait_for(lambda st: st.state == "draining"))
        late = pool.submit(cf.add, 1, 2)
        with pytest.raises(PoolClosed, match="draining"):
            await late
        assert [await within(10, j) for j in jobs] == [0.3, 0.3]
        await within(10, drained)
    assert pool.status().state == "closed"


@pytest.mark.timeout(30)
@pool_test
async def test_leaving_by_exception_or_cancellation_closes_the_pool() -> None:
    pool = Pool(cfg("fork", num_idle=2, max_children=2, close_timeout=0.3))
    with pytest.raises(KeyError):
        async with pool:
            job = pool.submit(cf.sleep, 30)
            raise KeyError("user code failed")
    assert pool.status().state == "closed"
    with pytest.raises(PoolClosed):
        await job

    async def body(p: Pool, entered: asyncio.Event) -> None:
        async with p:
            p.submit(cf.sleep, 30)
            entered.set()
            await asyncio.sleep(3600)

    cancelled_pool = Pool(cfg("fork", num_idle=2, max_children=2, close_timeout=0.3))
    entered = asyncio.Event()
    task = asyncio.ensure_future(body(cancelled_pool, entered))
    await within(10, entered.wait())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled_pool.status().state == "closed"
    assert not live_descendants()


def test_a_pool_never_closed_is_killed_when_its_event_loop_ends() -> None:
    holder: list[Pool] = []
    jobs: list[JobHandle] = []

    async def forgetful() -> None:
        pool = Pool(cfg("fork", num_idle=2, max_children=2))
        holder.append(pool)
        await pool.start()
        jobs.append(pool.submit(cf.sleep, 30))

    # asyncio.run cancels the driver at the end: it must kill and reap its children.
    run_checked(forgetful)
    assert holder[0].status().pids == {}
    assert jobs[0].done() and jobs[0].state == "failed"


@pytest.mark.timeout(30)
@pool_test
async def test_transitions_record_every_state_change_in_order() -> None:
    async with Pool(cfg("fork")) as pool:
        job = pool.submit(cf.add, 1, 2)
        assert await job == 3
    records = pool.transitions()
    job_path = [(t.source, t.event, t.dest) for t in records
                if t.kind == "job" and t.ident == job.id]
    assert job_path == [("", "submit", "queued"), ("queued", "dispatch", "dispatched"),
                        ("dispatched", "ack", "running"), ("running", "finish", "done")]
    pool_path = [t.dest for t in records if t.kind == "pool"]
    assert pool_path[0] == "running" and pool_path[-2:] == ["closing", "closed"]
    times = [t.time for t in records]
    assert times == sorted(times)
    kind, _ident, source, _event, _dest, _time = records[0]  # a plain 6-tuple too
    assert (kind, source) == ("child", "")


@pytest.mark.timeout(30)
@pool_test
async def test_a_manual_clock_drives_every_deadline() -> None:
    clock = ManualClock(start=100.0)
    async with Pool(cfg("fork", job_timeout=5.0), clock=clock) as pool:
        job = pool.submit(cf.sleep, 30)
        await within(10, pool.wait_for(lambda st: st.jobs["running"] == 1))
        clock.advance(4.9)
        # A whole job round trip on the other child: the driver has seen time 104.9.
        assert await within(10, pool.run(cf.add, 1, 1)) == 2
        assert job.state == "running"
        clock.advance(0.2)
        with pytest.raises(JobTimeout):
            await within(10, job)
        running = [t for t in pool.transitions() if t.kind == "job" and t.dest == "cancelling"]
        assert running[0].time == pytest.approx(105.1)


@pytest.mark.timeout(30)
@pool_test
async def test_a_death_fed_at_once_beside_a_due_heartbeat_wakes_the_driver_once() -> None:
    # Seen in the quick demo under load: a child's death, fed to the core from
    # its death callback, met a heartbeat due that no timer had reported yet.
    # The memory sample that heartbeat asked for woke the driver, and so did
    # the respawn after the death: InvalidStateError, raised out of the
    # callback (the loop logged "Exception in callback").
    problems: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: problems.append(ctx))
    clock = ManualClock()
    config = cfg("fork", num_idle=2, max_children=2, memory_warn_mb=1e6, ping_interval=0.5)
    async with Pool(config, clock=clock) as pool:
        before = (await wait_status(pool, ready(2))).pids
        victim = min(before.values())
        clock.advance(1.0, fire=False)  # the heartbeat is due; its timer has not run
        os.kill(victim, signal.SIGKILL)
        after = await wait_status(pool, lambda st: st.children["ready"] == 2
                                  and victim not in st.pids.values())
        assert len(set(after.pids.values()) - set(before.values())) == 1
    assert problems == []


@pytest.mark.timeout(60)
@pool_test
async def test_a_thousand_jobs_return_their_values() -> None:
    async with Pool(cfg("forkserver", num_idle=2, max_children=2)) as pool:
        values = await within(60, asyncio.gather(*(pool.run(cf.add, i, 1) for i in range(1000))))
        assert values == [i + 1 for i in range(1000)]
        handles: list[Any] = [pool.submit(cf.add, i, 0) for i in range(200)]
        assert [await h for h in handles] == list(range(200))


class _CoreThatFailsOnAck(SupervisorCore):
    def handle(self, event: ev.Event) -> list[ev.Command]:
        if isinstance(event, ev.JobAck):
            raise RuntimeError("a bug in the core")
        return super().handle(event)


@pytest.mark.timeout(30)
@pool_test
async def test_a_failing_supervisor_loop_kills_its_children_and_fails_its_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("runtime.pool.SupervisorCore", _CoreThatFailsOnAck)
    pool = Pool(cfg("fork", num_idle=2, max_children=2))
    await pool.start()
    job = pool.submit(cf.sleep, 30)
    with pytest.raises(PoolClosed, match="a bug in the core"):
        await within(10, job)
    assert pool.status().pids == {}
    with pytest.raises(WayoutError, match="supervisor loop failed"):
        await pool.close()
    with pytest.raises(PoolClosed):
        pool.submit(cf.add, 1, 2)


class _CoreThatClosesAsItStarts(SupervisorCore):
    """Spawns its first children and, in the same driver step, closes (killing them)."""

    def handle(self, event: ev.Event) -> list[ev.Command]:
        commands = super().handle(event)
        if isinstance(event, ev.Start):
            commands += super().handle(ev.Close(now=event.now))
        return commands


@pytest.mark.timeout(30)
@pool_test
async def test_a_child_killed_in_the_step_that_spawned_it_is_never_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The driver starts the processes the core spawned at the end of its step;
    # one the core already killed by then must not start (nothing would end it).
    monkeypatch.setattr("runtime.pool.SupervisorCore", _CoreThatClosesAsItStarts)
    pool = Pool(cfg("fork", num_idle=2, max_children=2, kill_timeout=20.0))
    await within(10, pool.start())
    await within(10, pool.close())
    for child in (0, 1):
        assert transitions_of(pool, "child", child) == [
            ("", "spawn", "spawned"), ("spawned", "kill", "failed"), ("failed", "exit", "killed")]
    assert pool.status().state == "closed"


@pytest.mark.timeout(30)
@pool_test
async def test_a_listener_sees_every_command_in_order_and_cannot_break_the_pool() -> None:
    seen: list[ev.Command] = []

    def broken(command: ev.Command) -> None:
        raise RuntimeError("a listener bug")

    async with Pool(cfg("fork")) as pool:
        unsubscribe = pool.subscribe(seen.append)
        pool.subscribe(broken)
        assert await pool.run(cf.add, 2, 3) == 5
        unsubscribe()
        count = len(seen)
        assert await pool.run(cf.add, 1, 1) == 2
        assert len(seen) == count  # unsubscribed: nothing more arrives
    kinds = [type(c) for c in seen]
    assert kinds.index(ev.SendJob) < kinds.index(ev.SettleJob)
    settled = [c for c in seen if isinstance(c, ev.SettleJob)]
    assert [c.outcome.value is not None for c in settled] == [True]
    job_moves = [(c.source, c.dest) for c in seen
                 if isinstance(c, ev.Transitioned) and c.kind == "job"]
    assert job_moves == [("", "queued"), ("queued", "dispatched"), ("dispatched", "running"),
                         ("running", "done")]


@pytest.mark.timeout(30)
@pool_test
async def test_a_childs_messages_are_fed_by_the_callback_that_reads_them() -> None:
    # A warm pool's driver is parked: the child's ack and result are fed to the
    # core by the socket's read callback (no task), one loop iteration sooner;
    # the user's submission still goes through the driver task.
    fed_by: dict[tuple[str, str], object] = {}

    def record(command: ev.Command) -> None:
        if isinstance(command, ev.Transitioned) and command.kind == "job":
            fed_by[(command.source, command.dest)] = asyncio.current_task()

    async with Pool(cfg("fork", num_idle=1, max_children=1)) as pool:
        await within(10, pool.wait_for(lambda st: st.children.get("ready", 0) == 1))
        pool.subscribe(record)
        assert await within(10, pool.run(cf.add, 2, 3)) == 5
        driver = pool._driver
    assert fed_by[("", "queued")] is driver
    assert fed_by[("dispatched", "running")] is None
    assert fed_by[("running", "done")] is None
