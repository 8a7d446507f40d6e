"""Health with real processes: heartbeats, memory limits, recycling and restart intensity.

The core decides all of it (tests/core checks the decisions); these tests show
that the runtime carries them out on real processes, with real time and memory.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

import child_funcs as cf
import pytest
from runtime_support import METHODS, cfg, pool_test, transitions_of, within

from fsm import events as ev
from runtime import Pool
from runtime.errors import ChildDied

pytestmark = pytest.mark.timeout(60)


def busy_child(pool: Pool) -> int:
    (child,) = [c for c in pool.status().pids if transitions_of(pool, "child", c)[-1][2] == "busy"]
    return child


# --- heartbeat -----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_a_stopped_busy_child_is_killed_at_ping_timeout_and_its_job_says_why(
    method: str,
) -> None:
    config = cfg(method, num_idle=1, max_children=2, ping_interval=0.1, ping_timeout=0.6)
    async with Pool(config) as pool:
        job = pool.submit(cf.sleep, 3600)
        await within(20, pool.wait_for(lambda st: st.jobs["running"] == 1))
        child = busy_child(pool)
        pid = pool.status().pids[child]
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(ChildDied) as failure:
            await within(10, job)
        message = str(failure.value)
        assert f"child {child} (pid {pid})" in message
        assert "answered no ping within ping_timeout=0.6s" in message
        assert transitions_of(pool, "child", child)[-2:] == [
            ("busy", "timeout", "failed"), ("failed", "exit", "killed")]
        assert await within(20, pool.run(cf.add, 1, 2)) == 3


@pool_test
async def test_a_busy_child_answers_pings_while_its_job_runs() -> None:
    # The job outlasts ping_timeout several times over: only pongs sent while
    # it runs (by the child's control thread) keep the child alive.
    config = cfg("fork", num_idle=1, max_children=1, ping_interval=0.1, ping_timeout=0.8)
    async with Pool(config) as pool:
        assert await within(20, pool.run(cf.sleep, 2.5)) == 2.5
        assert not [t for t in pool.transitions() if t.kind == "child" and t.event == "timeout"]


# --- memory ----------------------------------------------------------------------------
# forkserver: a child's memory does not depend on how much the test process holds
# (a forked child's PSS counts half of every page it still shares with pytest).


@pool_test
async def test_a_job_over_memory_limit_gets_its_child_killed_and_fails_saying_so() -> None:
    config = cfg("forkserver", num_idle=1, max_children=2, ping_interval=0.1,
                 memory_limit_mb=120.0)
    async with Pool(config) as pool:
        job = pool.submit(cf.hold_memory, 200, 3600)
        with pytest.raises(ChildDied) as failure:
            await within(20, job)
        assert "over memory_limit_mb=120" in str(failure.value)
        (killed,) = [t.ident for t in pool.transitions()
                     if t.kind == "child" and t.event == "kill"]
        assert transitions_of(pool, "child", killed)[-2:] == [
            ("busy", "kill", "failed"), ("failed", "exit", "killed")]
        assert await within(20, pool.run(cf.add, 1, 2)) == 3


@pool_test
async def test_memory_over_warn_logs_one_warning_per_crossing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wayout")
    config = cfg("forkserver", num_idle=1, max_children=1, ping_interval=0.1,
                 memory_warn_mb=80.0)
    samples = []

    def count_samples(command: ev.Command) -> None:
        if isinstance(command, ev.SampleMemory):
            samples.append(command)

    async with Pool(config) as pool:
        pool.subscribe(count_samples)
        (child,) = pool.status().pids
        job = pool.submit(cf.hold_memory, 150, 1.5)
        assert await within(20, job) == 150 * 1024 * 1024  # a warning, not a kill
        # Sampled many times while over the threshold...
        assert len(samples) >= 5
    warnings = [r for r in caplog.records if "over memory_warn_mb=80" in r.getMessage()]
    # ...and said once.
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert (warnings[0].child_id, warnings[0].job_id) == (child, job.id)  # type: ignore[attr-defined]


# --- recycling -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "forkserver"])
@pool_test
async def test_max_jobs_per_child_recycles_without_losing_a_job(method: str) -> None:
    config = cfg(method, num_idle=1, max_children=2, max_jobs_per_child=3)
    async with Pool(config) as pool:
        one_by_one = [await within(20, pool.run(cf.pid)) for _ in range(7)]
        # Which ready child takes the next job depends on which warmed first;
        # what recycling promises is that no child serves more than 3.
        counts = [one_by_one.count(p) for p in dict.fromkeys(one_by_one)]
        assert max(counts) == 3 and len(counts) >= 3, counts
        at_once = await within(30, _gather(pool, 12))
        assert len(at_once) == 12
        per_pid = Counter(one_by_one + at_once)
        assert max(per_pid.values()) <= 3
        recycled = [t.ident for t in pool.transitions()
                    if t.kind == "child" and (t.source, t.event, t.dest)
                    == ("ready", "stop", "stopping")]
        assert len(recycled) >= 2 + 12 // 3 - 1
        # Each exits on its own (the last ones may still be on their way out).
        await within(10, pool.wait_for(lambda st: all(
            transitions_of(pool, "child", c)[-1] == ("stopping", "exit", "killed")
            for c in recycled)))
        # Nothing failed, nothing was killed.
        assert not [t for t in pool.transitions()
                    if t.kind == "child" and t.event in ("kill", "timeout")]


async def _gather(pool: Pool, count: int) -> list[int]:
    handles = [pool.submit(cf.pid) for _ in range(count)]
    return [await handle for handle in handles]


# --- restart intensity and back-off ----------------------------------------------------------


@pool_test
async def test_an_initializer_that_always_fails_backs_off_instead_of_looping_hot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wayout")
    max_restarts, max_children = 2, 2
    config = cfg("fork", num_idle=2, max_children=max_children, initializer=cf.init_raises_always,
                 max_restarts=max_restarts, restart_window=10.0, backoff_initial=0.3,
                 backoff_max=0.6, start_timeout=0.5)
    spawns: list[int] = []

    def count_spawns(command: ev.Command) -> None:
        if isinstance(command, ev.SpawnChild):
            spawns.append(command.child)

    pool = Pool(config)
    pool.subscribe(count_spawns)
    async with pool:
        status = await within(20, pool.wait_for(lambda st: st.state == "backing_off"))
        assert not status.available
        assert "backing off" in status.reason
        assert "initializer always fails" in status.reason
        # Three back-offs: the spawns are bounded per episode, not by how fast a
        # child can fail (a fork that fails at once would spawn hundreds a second).
        await within(30, pool.wait_for(lambda st: back_offs(pool) >= 3))
        episodes = back_offs(pool) + 1
        assert len(spawns) <= episodes * (max_restarts + 1 + max_children), spawns
        assert not pool.status().available
        # The delay doubled up to backoff_max, and each back-off lasted its delay.
        assert pool.status().backoff_level == 2
        pool_moves = [t for t in pool.transitions() if t.kind == "pool"]
        began = [t.time for t in pool_moves if t.event == "back_off"]
        ended = [t.time for t in pool_moves if t.source == "backing_off" and t.dest == "running"]
        for start, end, delay in zip(began, ended, (0.3, 0.6, 0.6), strict=False):
            assert end - start >= delay - 1e-9
        assert len(ended) >= 2
    backing_off = [r.getMessage() for r in caplog.records if "backing off" in r.getMessage()]
    assert backing_off
    assert "last: child" in backing_off[0]
    assert "initializer failed: RuntimeError: initializer always fails" in backing_off[0]


def back_offs(pool: Pool) -> int:
    return sum(1 for t in pool.transitions() if t.kind == "pool" and t.event == "back_off")
