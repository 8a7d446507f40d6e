"""runtime.Executor: wayout behind the concurrent.futures.Executor API (issue 16).

The basic contract, errors that keep their type or land in the future, a dead
worker, and freed results run under all three start methods; the rest under
fork, which exercises the same executor code at a fraction of the start-up cost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import itertools
import os
import pickle
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from runtime import Executor
from runtime.errors import ChildDied, InvalidJob, JobFailed, JobTimeout, PoolClosed, WayoutError
from runtime.tools.leaks import live_descendants, open_fds, start_helpers
from tests.runtime import child_funcs as chf
from tests.runtime.runtime_support import METHODS

TIMEOUT = 60.0

#: Short bounds, as in runtime_support.cfg, as PoolConfig fields.
SETTINGS: dict[str, Any] = {
    "spawn_timeout": 15.0, "ping_interval": 0.5, "close_timeout": 1.0, "kill_timeout": 2.0,
    "queue_timeout": 20.0, "job_timeout": 20.0, "start_timeout": 20.0, "drain_timeout": 10.0,
    "max_restarts": 10, "backoff_initial": 0.2, "backoff_max": 1.0,
}


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """After the test no descendant process may be alive and no fd left open."""
    start_helpers()
    before = open_fds()
    already = {p.pid for p in live_descendants()}
    yield
    leaked = [p for p in live_descendants() if p.pid not in already]
    assert not leaked, f"processes outlived the executor: {leaked}"
    after = open_fds()
    assert {fd: t for fd, t in after.items() if before.get(fd) != t} == {}


def executor(method: str = "fork", workers: int = 2, **settings: Any) -> Executor:
    return Executor(workers, mp_context=method, **{**SETTINGS, **settings})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_submit_map_errors_and_run_in_executor(method: str, no_leaks: None) -> None:
    with executor(method) as ex:
        assert isinstance(ex, cf.Executor)
        assert ex.submit(chf.kw, 1, b=2, timeout=3.0).result(TIMEOUT) == (1, 2, 3.0)
        assert list(ex.map(chf.add, range(7), range(7), timeout=TIMEOUT)) == \
            [2 * i for i in range(7)]
        assert list(ex.map(chf.add, range(7), range(7), chunksize=3)) == \
            [2 * i for i in range(7)]
        with pytest.raises(ZeroDivisionError) as raised:
            ex.submit(divmod, 1, 0).result(TIMEOUT)
        assert isinstance(raised.value, JobFailed)

        async def from_a_loop() -> int:
            loop = asyncio.get_running_loop()
            value: int = await loop.run_in_executor(ex, chf.add, 20, 22)
            return value

        assert asyncio.run(from_a_loop()) == 42
        # max_workers live children; the second may still be warming (the
        # Executor queues jobs while its children start), so count every live state.
        children = ex.status().children
        assert sum(children[s] for s in ("spawned", "warming", "ready", "busy")) == 2, children


@pytest.mark.timeout(120)
def test_futures_run_once_acked_and_a_per_call_timeout_is_a_timeout_error(
        tmp_path: Path, no_leaks: None) -> None:
    started, go = tmp_path / "started", tmp_path / "go"
    os.mkfifo(started)
    os.mkfifo(go)
    with executor(workers=2) as ex:
        future = ex.submit(chf.say_started_then_wait, str(started), str(go))
        with open(started, "rb") as fifo:  # blocks until the job's user code runs
            assert fifo.read() == b"!"
        # Its ack was on the socket before that; a job submitted now settles after
        # the parent read it, and the result thread delivers in order.
        assert ex.submit(chf.add, 1, 1).result(TIMEOUT) == 2
        assert future.running()
        assert not future.cancel()  # as with ProcessPoolExecutor: a running job stays
        with open(go, "wb") as fifo:
            fifo.write(b"go")
        assert future.result(TIMEOUT) == "go"

        slow = ex.options(timeout=0.3).submit(chf.sleep, 30.0)
        with pytest.raises(TimeoutError) as timed_out:
            slow.result(TIMEOUT)
        assert isinstance(timed_out.value, JobTimeout)
        # every keyword of options().submit is the job's, timeout too
        assert ex.options(timeout=5.0).submit(chf.kw, 1, timeout=0.5).result(TIMEOUT) == \
            (1, 0, 0.5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("method", "how"), [
    ("fork", "sigkill"), ("fork", "segfault"), ("forkserver", "sigkill"), ("spawn", "segfault")])
def test_a_dead_worker_fails_its_job_with_broken_process_pool_and_the_pool_goes_on(
        method: str, how: str, no_leaks: None) -> None:
    with executor(method, workers=1) as ex:
        if how == "sigkill":
            future = ex.submit(chf.kill_self, 9)
            name = "SIGKILL"
        else:
            future = ex.submit(chf.segfault)
            name = "SIGSEGV"
        with pytest.raises(BrokenProcessPool) as died:
            future.result(TIMEOUT)
        assert isinstance(died.value, ChildDied) and isinstance(died.value, WayoutError)
        assert name in str(died.value)
        assert ex.submit(chf.add, 1, 2).result(TIMEOUT) == 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_pickling_errors_and_base_exceptions_land_in_the_future(
        method: str, no_leaks: None) -> None:
    with executor(method) as ex:
        refused = ex.submit(chf.echo, threading.Lock())
        with pytest.raises(TypeError) as lock:
            refused.result(TIMEOUT)
        assert isinstance(lock.value, InvalidJob)
        with pytest.raises(pickle.PicklingError):
            ex.submit(chf.echo, chf.RefusesPickling()).result(TIMEOUT)
        with pytest.raises(InvalidJob):
            ex.submit(chf.echo, chf.ExitsOnPickle()).result(TIMEOUT)
        for how in ("exit", "interrupt"):
            with pytest.raises(JobFailed, match="cannot be unpickled"):
                ex.submit(chf.return_exploding, how).result(TIMEOUT)
            # exception() returns the same failure, first or after result().
            exploding = ex.submit(chf.return_exploding, how)
            error = exploding.exception(TIMEOUT)
            assert isinstance(error, JobFailed) and "cannot be unpickled" in str(error)
            with pytest.raises(JobFailed) as again:
                exploding.result(0)
            assert again.value is error and exploding.exception(0) is error
        with pytest.raises(JobFailed):  # a SystemExit in the job is the job's failure
            ex.submit(chf.exit_job, 3).result(TIMEOUT)
        assert ex.submit(chf.add, 1, 2).result(TIMEOUT) == 3


@pytest.mark.timeout(120)
def test_callbacks_run_off_the_loop_thread_and_cannot_stop_the_pool(no_leaks: None) -> None:
    with executor() as ex:
        threads: list[str] = []
        done = threading.Event()

        def note(future: cf.Future[Any]) -> None:
            threads.append(threading.current_thread().name)

        def exits(future: cf.Future[Any]) -> None:
            raise SystemExit(1)

        def interrupts(future: cf.Future[Any]) -> None:
            raise KeyboardInterrupt

        for callback in (note, exits, interrupts):
            ex.submit(chf.add, 1, 1).add_done_callback(callback)
        last = ex.submit(chf.add, 2, 2)
        last.add_done_callback(lambda f: done.set())
        assert done.wait(TIMEOUT)
        assert threads and "wayout-executor" != threads[0]
        assert ex.submit(chf.add, 3, 3).result(TIMEOUT) == 6


@pytest.mark.timeout(120)
def test_values_are_unpickled_by_the_thread_that_asks_never_on_the_loop(
        tmp_path: Path, no_leaks: None) -> None:
    go = tmp_path / "go"
    os.mkfifo(go)
    with executor() as ex:
        # No callback: set on the loop thread still pickled, unpickled by the caller.
        assert ex.submit(chf.unpickled_where).result(TIMEOUT) == "MainThread"
        error = ex.submit(divmod, 1, 0).exception(TIMEOUT)
        assert isinstance(error, ZeroDivisionError) and isinstance(error, JobFailed)
        futures = [ex.submit(chf.add, i, i) for i in range(6)]
        done, _ = cf.wait(futures, timeout=TIMEOUT)
        assert len(done) == 6
        assert sorted(f.result() for f in cf.as_completed(futures)) == [2 * i for i in range(6)]
        # A failure is an exception to waiters while they wait.
        fails, holds = tmp_path / "fails", tmp_path / "holds"
        os.mkfifo(fails)
        os.mkfifo(holds)
        failing = ex.submit(chf.wait_then_raise, str(fails))
        held = ex.submit(chf.unpickled_where, str(holds))
        release = threading.Thread(target=lambda: fails.write_bytes(b"go"))
        release.start()
        done, _ = cf.wait([failing, held], timeout=TIMEOUT, return_when=cf.FIRST_EXCEPTION)
        release.join()
        assert done == {failing}
        holds.write_bytes(b"go")
        assert held.result(TIMEOUT) == "MainThread"
        # With a callback: set, and unpickled, by the result thread.
        names: list[str] = []
        called = threading.Event()
        with_callback = ex.submit(chf.unpickled_where, str(go))
        with_callback.add_done_callback(lambda f: (names.append(f.result()), called.set()))
        with open(go, "wb") as fifo:  # the job ends only once its callback is there
            fifo.write(b"go")
        assert called.wait(TIMEOUT)
        assert names == ["wayout-executor-results"]
        assert with_callback.result(0) == "wayout-executor-results"


@pytest.mark.timeout(120)
def test_shutdown_cancels_pending_futures_and_refuses_new_ones(
        tmp_path: Path, no_leaks: None) -> None:
    started = tmp_path / "started"
    os.mkfifo(started)
    ex = executor(workers=1)
    running = ex.submit(chf.say_started_then_sleep, str(started), 0.5)
    queued = [ex.submit(chf.add, i, i) for i in range(20)]
    with open(started, "rb") as fifo:
        assert fifo.read() == b"!"
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result(0) == 0.5
    assert any(f.cancelled() for f in queued)
    assert all(f.done() for f in queued)
    with pytest.raises(RuntimeError) as refused:
        ex.submit(chf.add, 1, 1)
    assert isinstance(refused.value, PoolClosed)
    ex.shutdown()  # again: nothing to do


@pytest.mark.timeout(120)
def test_a_cancelled_future_wakes_wait_and_as_completed(tmp_path: Path, no_leaks: None) -> None:
    # cf.wait() and as_completed() see a cancelled future only once it is
    # CANCELLED_AND_NOTIFIED; cancel() alone makes it CANCELLED. The waits are
    # bounded, so that they fail rather than hang if nobody notifies; the ones
    # on cancelled futures alone need no time at all (cancel() notifies in
    # the thread that calls it), and the held job must still be there to
    # release (job_timeout).
    started, go = tmp_path / "started", tmp_path / "go"
    os.mkfifo(started)
    os.mkfifo(go)

    def release() -> None:
        with open(go, "wb") as fifo:
            fifo.write(b"go")

    with executor(workers=1) as ex:
        held = ex.submit(chf.say_started_then_wait, str(started), str(go))
        handed = ex.submit(chf.add, 1, 1)  # in the pool, behind the held job
        pending = [ex.submit(chf.add, i, i) for i in range(3)]  # in the executor
        with open(started, "rb") as fifo:  # the one child is held: nothing else runs
            assert fifo.read() == b"!"
        try:
            assert handed.cancel() and pending[-1].cancel()
            done, not_done = cf.wait([handed, pending[-1]], timeout=0)
            assert not not_done
        finally:
            release()
        everything = [held, handed, *pending]
        assert len(list(cf.as_completed(everything, timeout=TIMEOUT))) == 5
        assert [f.result(0) for f in (held, *pending[:-1])] == ["go", 0, 2]
        # shutdown(cancel_futures=True) cancels the ones waiting in the executor.
        held = ex.submit(chf.say_started_then_wait, str(started), str(go))
        queued = [ex.submit(chf.add, i, i) for i in range(3)]  # one handed, two pending
        with open(started, "rb") as fifo:
            assert fifo.read() == b"!"
        try:
            ex.shutdown(wait=False, cancel_futures=True)
            done, not_done = cf.wait(queued[1:], timeout=0)
            assert not not_done and all(f.cancelled() for f in done)
        finally:
            release()
        assert held.result(TIMEOUT) == "go" and queued[0].result(TIMEOUT) == 0


class _ShutsDownWhenPickled:
    """An argument whose pickling, in submit()'s thread, shuts the executor down."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    def __reduce__(self) -> tuple[Any, ...]:
        # wait=True: the loop thread has stopped (no job was counted) by the
        # time submit() goes on to hand this one over.
        self.ex.shutdown(wait=True)
        return (int, (7,))


@pytest.mark.timeout(120)
def test_a_submit_that_meets_a_shutdown_while_it_pickles_is_refused(no_leaks: None) -> None:
    ex = executor(workers=1)
    assert ex.submit(chf.add, 1, 1).result(TIMEOUT) == 2
    # Accepted, it would be handed to a loop that is gone: a future that never settles.
    with pytest.raises(PoolClosed):
        ex.submit(chf.echo, _ShutsDownWhenPickled(ex))


@pytest.mark.timeout(120)
def test_a_status_request_that_timed_out_is_not_served_later(no_leaks: None) -> None:
    with executor(workers=1) as ex:
        served: list[int] = []
        status = ex._pool.status

        def counted() -> Any:
            served.append(1)
            return status()

        ex._pool.status = counted  # type: ignore[method-assign]
        gate = threading.Event()
        ex._loop.call_soon_threadsafe(gate.wait)  # the loop is busy until the gate opens
        try:
            with pytest.raises(TimeoutError):
                ex.status(timeout=0)
        finally:
            gate.set()
        ex.status()  # queued behind the first: the loop got to both
        assert served == [1]


@pytest.mark.timeout(120)
def test_map_is_lazy_and_bounded(no_leaks: None) -> None:
    with executor() as ex:
        results = ex.map(chf.add, itertools.count(), itertools.count(), max_in_flight=3)
        assert [next(results) for _ in range(10)] == [2 * i for i in range(10)]
        results.close()  # cancels what was submitted ahead
        with pytest.raises(TimeoutError):
            list(ex.map(chf.sleep, [0.0, 2.0], timeout=0.5))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_a_result_is_freed_with_the_callers_last_reference(method: str, no_leaks: None) -> None:
    # With the collector off, only reference counting frees a value: a cycle
    # through the executor (a future's callback holding its work item) or a
    # reference the result thread still holds would keep it alive.
    gc.collect()
    gc.disable()
    try:
        with executor(method) as ex:
            freed = []
            for value in ex.map(chf.token, range(30)):
                ref = weakref.ref(value)
                del value
                freed.append(ref() is None)
            future = ex.submit(chf.token, 99)
            ref = weakref.ref(future.result(TIMEOUT))
            del future
            freed.append(ref() is None)
    finally:
        gc.enable()
    assert all(freed), freed


@pytest.mark.timeout(120)
def test_the_executor_drains_at_interpreter_exit(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text(
        "import sys\n"
        "from runtime import Executor\n"
        "from tests.runtime import child_funcs as chf\n"
        "if __name__ == '__main__':\n"
        "    ex = Executor(1, mp_context='fork')\n"
        "    f = ex.submit(chf.sleep, 0.2)\n"
        "    f.add_done_callback(lambda f: print('done', f.result(), flush=True))\n"
        "    # no shutdown: the interpreter's exit drains it\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["done 0.2"]


@pytest.mark.timeout(120)
def test_jobs_handed_when_the_loop_fails_break_and_no_child_outlives_it(no_leaks: None) -> None:
    # The loop thread fails (a BaseException out of one of its callbacks stops
    # run_until_complete) while three submissions wait to be handed to the pool:
    # each must end BrokenProcessPool, not wait for ever, and the pool's
    # children must still be reaped.
    ex = executor(workers=1)
    assert ex.submit(chf.add, 1, 1).result(TIMEOUT) == 2  # the pool is up
    gate = threading.Event()

    def fail_the_loop() -> None:
        gate.wait(TIMEOUT)
        raise SystemExit("the executor's loop fails")

    ex._loop.call_soon_threadsafe(fail_the_loop)
    futures = [ex.submit(chf.add, 1, i) for i in range(3)]  # queued behind it
    gate.set()
    for future in futures:
        with pytest.raises(BrokenProcessPool, match="pool failed"):
            future.result(TIMEOUT)
    with pytest.raises(BrokenProcessPool):
        ex.submit(chf.add, 1, 1)
    ex.shutdown(wait=True)


@pytest.mark.timeout(120)
def test_a_status_request_the_closing_loop_never_reads_is_answered(no_leaks: None) -> None:
    # The race, made certain: a status() whose request reaches the loop after
    # its last pass (here: dropped on its way) is answered when the loop
    # closes, instead of waiting for ever (it has no timeout).
    ex = executor(workers=1)
    ex.submit(chf.add, 1, 1).result(TIMEOUT)
    loop = ex._loop
    schedule = loop.call_soon_threadsafe
    dropped = threading.Event()

    def drop_reads(callback: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(callback, "__name__", "") == "read":
            dropped.set()
            return None
        return schedule(callback, *args, **kwargs)

    loop.call_soon_threadsafe = drop_reads  # type: ignore[method-assign]
    answers: list[Any] = []
    asker = threading.Thread(target=lambda: answers.append(ex.status()), daemon=True)
    asker.start()
    assert dropped.wait(TIMEOUT)
    ex.shutdown(wait=True)
    asker.join(TIMEOUT)
    assert not asker.is_alive() and len(answers) == 1
    assert answers[0].state == "closed"


@pytest.mark.timeout(120)
def test_a_job_the_core_settles_as_it_is_handed_over_settles_its_future(
        no_leaks: None) -> None:
    # The core takes a handed job in at once, in the hand-over itself; a pool
    # that no longer accepts jobs settles it there, before the hand-over
    # returns: its future must still be settled, not wait for ever.
    from fsm import events as ev

    ex = executor(workers=1)
    assert ex.submit(chf.add, 1, 1).result(TIMEOUT) == 2
    drained = threading.Event()

    def drain() -> None:
        ex._pool._post(ev.Drain)
        drained.set()

    ex._loop.call_soon_threadsafe(drain)
    assert drained.wait(TIMEOUT)
    with pytest.raises(PoolClosed):
        ex.submit(chf.add, 1, 2).result(TIMEOUT)
    ex.shutdown(wait=True)


@pytest.mark.timeout(120)
def test_a_pool_whose_supervisor_loop_fails_breaks_the_executor(
        monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    # The core raises (a bug): the pool's driver kills its children and fails
    # its jobs; the executor must fail every job it has (none waits for ever),
    # refuse new ones with BrokenProcessPool, and shut down.
    from fsm import events as ev
    from fsm.core import SupervisorCore

    class CoreThatFailsOnAck(SupervisorCore):
        def handle(self, event: ev.Event) -> list[ev.Command]:
            if isinstance(event, ev.JobAck):
                raise RuntimeError("a bug in the core")
            return super().handle(event)

    monkeypatch.setattr("runtime.pool.SupervisorCore", CoreThatFailsOnAck)
    ex = executor(workers=1)
    futures = [ex.submit(chf.add, 1, i) for i in range(5)]  # 2 handed, 3 waiting
    for future in futures:
        with pytest.raises((PoolClosed, BrokenProcessPool)):
            future.result(TIMEOUT)
    with pytest.raises(BrokenProcessPool, match="a bug in the core"):
        ex.submit(chf.add, 1, 1)
    ex.shutdown(wait=True)


def test_a_bad_max_workers_is_refused_with_process_pool_executors_words() -> None:
    for number in (0, -1):
        with pytest.raises(ValueError) as refused:
            Executor(max_workers=number)
        assert refused.value.args == ("max_workers must be greater than 0",)
    for value in ("2", 1.5, True):
        with pytest.raises(TypeError, match="max_workers must be an int"):
            Executor(max_workers=value)  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_a_pool_that_cannot_start_fails_the_jobs_with_its_reason(
        monkeypatch: pytest.MonkeyPatch, no_leaks: None) -> None:
    # Jobs submitted while the pool starts (two handed to it, two waiting in
    # the executor) all fail with the reason it could not start.
    from runtime.pool import Pool

    gate = threading.Event()

    async def start(self: Pool) -> None:
        await asyncio.to_thread(gate.wait, TIMEOUT)
        raise WayoutError("no children today")

    monkeypatch.setattr(Pool, "start", start)
    ex = executor(workers=1)
    futures = [ex.submit(chf.add, 1, i) for i in range(4)]
    gate.set()
    for future in futures:
        with pytest.raises(BrokenProcessPool, match="no children today"):
            future.result(TIMEOUT)
    with pytest.raises(BrokenProcessPool, match="no children today"):
        ex.submit(chf.add, 1, 1)
    ex.shutdown(wait=True)
