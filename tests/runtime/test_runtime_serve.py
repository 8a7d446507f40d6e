"""serve_forever: the first SIGTERM/SIGINT drains the pool, a second closes it at once."""

from __future__ import annotations

import asyncio
import os
import signal

import child_funcs as cf
import pytest
from runtime_support import METHODS, cfg, pool_test, within
from script_support import Script

from runtime import Pool, serve_forever
from runtime.errors import WayoutError

pytestmark = pytest.mark.timeout(60)

#: Serves a pool with one job running; prints the pool's states and the job's end.
SERVER = """
import asyncio, logging, signal, sys
import child_funcs as cf
from fsm import events as ev
from runtime import Pool, serve_forever
from runtime.errors import WayoutError
from runtime_support import cfg

logging.basicConfig(level=logging.WARNING)

def show(command):
    if isinstance(command, ev.Transitioned) and command.kind == "pool":
        print("pool", command.dest, flush=True)

async def main(seconds, method):
    config = cfg(method, num_idle=1, drain_timeout=30.0, close_timeout=1.0)
    async with Pool(config) as pool:
        pool.subscribe(show)
        print("own", await pool.run(cf.own_signal_dispositions), flush=True)
        print("grandchild", await pool.run(cf.grandchild_signal_dispositions), flush=True)
        print("blocked", await pool.run(cf.blocked_signals), flush=True)
        job = pool.submit(cf.sleep, seconds)
        await pool.wait_for(lambda st: st.jobs["running"] == 1, timeout=30)
        serving = asyncio.ensure_future(serve_forever(pool))
        await asyncio.sleep(0)  # one loop turn: serve_forever installs its handlers first
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        print("serving", flush=True)
        await serving
        print("served", pool.status().state, flush=True)
        try:
            print("job done", await job, flush=True)
        except WayoutError as exc:
            print("job failed", type(exc).__name__, flush=True)

if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), sys.argv[2]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_the_running_job_finishes_and_the_process_exits_0(signum: int) -> None:
    server = Script(SERVER, "1.0", "forkserver")
    try:
        server.expect("serving")
        os.kill(server.pid, signum)
        server.expect("pool draining")
        code, err = server.finish(timeout=30)
    finally:
        server.kill()
    assert code == 0, err
    assert "served closed" in server.lines
    assert server.lines[-1] == "job done 1.0"
    assert "draining the pool" in err


@pytest.mark.parametrize("method", METHODS)
def test_a_sigterm_to_the_whole_process_group_still_drains(method: str) -> None:
    # systemd (KillMode=control-group) and `kill 0` signal every process of the
    # service: the children (and the forkserver) must leave it to the parent.
    server = Script(SERVER, "1.0", method, new_session=True)
    try:
        server.expect("serving")
        os.killpg(server.pid, signal.SIGTERM)
        code, err = server.finish(timeout=30)
    finally:
        server.kill()
    assert code == 0, err
    assert server.lines[-1] == "job done 1.0"
    # The children only leave the signals to the parent; nothing blocks them,
    # and what a job starts gets the defaults (an ignored or blocked signal
    # would survive exec).
    # The pool's own lines ("pool running") may come between the jobs' under
    # a slow start (spawn, a loaded machine): read the jobs' lines alone.
    jobs = [line for line in server.lines if not line.startswith("pool ")]
    assert jobs[0].startswith("own <function _leave_it_to_the_parent")
    assert jobs[1] == f"grandchild {signal.default_int_handler} {signal.SIG_DFL}"
    assert jobs[2] == "blocked []"


def test_a_second_signal_closes_at_once() -> None:
    server = Script(SERVER, "3600", "forkserver")
    try:
        server.expect("serving")
        os.kill(server.pid, signal.SIGTERM)
        server.expect("pool draining")
        os.kill(server.pid, signal.SIGINT)
        # Long before the job's hour (or drain_timeout) is over.
        code, err = server.finish(timeout=30)
    finally:
        server.kill()
    assert code == 0, err
    assert "pool closing" in server.lines
    assert server.lines[-2:] == ["served closed", "job failed PoolClosed"]
    assert "closing the pool now" in err


@pool_test
async def test_handlers_are_restored_and_a_pool_closed_elsewhere_ends_serving() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    async with Pool(cfg("fork")) as pool:
        serving = asyncio.ensure_future(serve_forever(pool))
        await asyncio.sleep(0)  # one loop turn: serve_forever installs its handlers first
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        await pool.close()
        await within(10, serving)
    assert {sig: signal.getsignal(sig) for sig in before} == before


@pool_test
async def test_a_signal_to_the_process_drains_a_pool_serve_forever_started() -> None:
    before = signal.getsignal(signal.SIGTERM)
    pool = Pool(cfg("fork"))
    serving = asyncio.ensure_future(serve_forever(pool))
    await asyncio.sleep(0)  # one loop turn: handlers installed, pool.start() under way
    assert signal.getsignal(signal.SIGTERM) is not before
    await within(20, pool.wait_for(lambda st: st.children["ready"] == 1))
    job = pool.submit(cf.sleep, 0.5)
    await within(10, pool.wait_for(lambda st: st.jobs["running"] == 1))
    os.kill(os.getpid(), signal.SIGTERM)
    await within(20, serving)
    assert pool.status().state == "closed"
    assert await job == 0.5
    with pytest.raises(WayoutError):
        pool.submit(cf.add, 1, 2)
    assert signal.getsignal(signal.SIGTERM) is before


@pool_test
async def test_cancelling_serve_forever_closes_the_pool() -> None:
    async with Pool(cfg("fork")) as pool:
        job = pool.submit(cf.sleep, 3600)
        await within(10, pool.wait_for(lambda st: st.jobs["running"] == 1))
        serving = asyncio.ensure_future(serve_forever(pool))
        await asyncio.sleep(0)
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await within(20, serving)
        assert pool.status().state == "closed"
        with pytest.raises(WayoutError):
            await job


@pool_test
async def test_a_handler_the_loop_had_before_is_put_back() -> None:
    loop = asyncio.get_running_loop()
    called: asyncio.Future[None] = loop.create_future()

    def earlier() -> None:
        if not called.done():
            called.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, earlier)
    try:
        async with Pool(cfg("fork")) as pool:
            serving = asyncio.ensure_future(serve_forever(pool))
            await asyncio.sleep(0)  # one loop turn: serve_forever installs its handlers first
            await pool.close()
            await within(10, serving)
        assert not called.done()
        os.kill(os.getpid(), signal.SIGTERM)
        await within(5, called)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
