"""``Executor``: a wayout pool behind the ``concurrent.futures.Executor`` API.

For synchronous code, other threads, and code written for
``ProcessPoolExecutor``. Every method is thread-safe. The pool runs on an event
loop of its own, on a daemon thread of the executor's (``wayout-executor``);
the caller's thread only pickles the job and queues it.

Three threads, each with one job:

* the **caller's** thread pickles the job (an error lands in the future, as
  ``ProcessPoolExecutor`` does) and either hands it to the loop thread, while
  fewer than ``2 * max_workers`` jobs are handed and unsettled, or queues it
  in the executor: a long queue waits there (where ``shutdown(cancel_futures=
  True)`` cancels it and ``queue_timeout`` does not run), not in the pool;
* the **loop** thread submits handed jobs to the ``Pool``, moves each future
  to RUNNING when its child acknowledged the job and, as each settles, hands
  over the next queued one. A job that returned a value, whose future has no
  done-callback, is set there, with the value still pickled: the first thread
  that asks for it unpickles it (the caller's, usually), so no user code runs
  on the loop and the caller wakes without another thread hop (a value that
  then cannot be unpickled raises ``JobFailed`` from ``result()``);
* the **result** thread (``wayout-executor-results``) sets every other future
  (unpickling its value or exception) and runs its done-callbacks: they never
  run on the loop thread, and a callback that raises, even ``SystemExit``, is
  logged and stops nothing.

Errors, as ``ProcessPoolExecutor``'s families where they mean the same: a job
whose child died raises ``ChildDied``, a ``BrokenProcessPool`` that names the
signal; only that job fails and the pool goes on. ``JobTimeout`` is a
``TimeoutError``; a job's own exception keeps its type (``JobFailed``);
pickling errors land in the future (``InvalidJob``); ``submit`` after
``shutdown`` raises ``PoolClosed``, a ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fsm import events as ev
from fsm.config import PoolConfig, job_timeout
from fsm.errors import ConfigError, PoolClosed
from runtime.errors import InvalidJob
from runtime.pool import Pool, PoolStatus, outcome_value, pickle_job

log = logging.getLogger("wayout")

#: Jobs handed to the pool per worker: one running and one waiting, so that a
#: child that finishes finds its next job already in the core.
_IN_POOL_PER_WORKER = 2

_executors: weakref.WeakSet[Executor] = weakref.WeakSet()
_global_shutdown = False


def _python_exit() -> None:
    """At interpreter exit: drain every executor still open, as PPE does."""
    global _global_shutdown
    _global_shutdown = True
    for executor in list(_executors):
        executor.shutdown(wait=True)


# Run before threading joins its non-daemon threads (PPE registers the same way).
threading._register_atexit(_python_exit)  # type: ignore[attr-defined]


def _process_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    """Run one chunk of ``map`` in a child."""
    return [fn(*args) for args in chunk]


def _result_or_cancel(future: cf.Future[Any], end: float | None) -> Any:
    try:
        return future.result(None if end is None else end - time.monotonic())
    except BaseException:
        future.cancel()
        raise
    finally:
        del future


def check_max_workers(max_workers: object) -> None:
    """Refuse a ``max_workers`` that is not an int >= 1, with ProcessPoolExecutor's
    words (loky's and CPython's tests compare them) and type for each case."""
    if not isinstance(max_workers, int) or isinstance(max_workers, bool):
        raise TypeError(f"max_workers must be an int, not {type(max_workers).__name__}")
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")


def pool_config(base: PoolConfig | None, changes: dict[str, Any], who: str) -> PoolConfig:
    """``base`` (default: ``PoolConfig()``) with ``changes``, checked by PoolConfig.

    A key that is not a PoolConfig field is a ``ConfigError`` that names ``who``.
    """
    try:
        return dataclasses.replace(base if base is not None else PoolConfig(), **changes)
    except TypeError as exc:  # an unknown keyword
        raise ConfigError(f"{who}: {exc}; the settings are PoolConfig's fields") from exc


class _Work(cf.Future[Any]):
    """The future of one submitted job, which is also its work item.

    One object, so that nothing of the executor's refers to a settled job: the
    value is freed with the caller's last reference to the future (no cycle
    waits for the garbage collector), as ``ProcessPoolExecutor``'s is.
    """

    def __init__(self, executor: Executor, payload: bytes, timeout: float | None) -> None:
        super().__init__()
        self._executor = weakref.ref(executor)
        #: The pickled call; dropped once the pool has it.
        self.payload: bytes | None = payload
        self.timeout = timeout
        #: The pool's id of the job, from the loop thread handing it over.
        self.job_id: int | None = None
        #: (job id, outcome) of a future settled on the loop thread, until unpickled.
        self._raw: tuple[int, ev.Outcome] | None = None
        #: Whether cancel() told this future's waiters (once: a second notify raises).
        self._notified = False
        #: The value decoded from ``_raw``, or the error decoding it raised: the
        #: executor's own, not cf.Future's (whose result stays _UNDECODED).
        self._decoded: Any = _UNDECODED
        self._decode_error: BaseException | None = None

    # The only private parts of concurrent.futures.Future read here (both
    # there since 3.2; none is written): its lock, so that the executor's
    # moves of a future (to RUNNING, CANCELLED_AND_NOTIFIED, set) are atomic
    # with the user's cancel(), and whether a done-callback was added, which
    # decides, under that lock, where a future is set (the loop thread's fast
    # path is only for one with no callback, as no callback may run there).

    @property
    def lock(self) -> threading.Condition:
        """The future's own lock (every state change of cf.Future is made under it)."""
        return self._condition

    def has_callbacks(self) -> bool:
        """Whether a done-callback was added (meaningful under ``lock``)."""
        return bool(self._done_callbacks)  # type: ignore[attr-defined]

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled:
            # CANCELLED -> CANCELLED_AND_NOTIFIED: wait() and as_completed() see a
            # cancelled future only then (PPE's manager thread does this for its
            # own). Here, once, under the future's lock: every other call of
            # set_running_or_notify_cancel() is made under it too, and only on a
            # future that is not done, so none meets a CANCELLED one.
            with self.lock:
                first, self._notified = not self._notified, True
                if first:
                    self.set_running_or_notify_cancel()  # returns False, wakes the waiters
        executor = self._executor()
        if cancelled and executor is not None:
            executor._cancelled(self)
        return cancelled

    # A future settled on the loop thread holds its job's outcome, not yet
    # unpickled: the first thread that asks for the value unpickles it (the
    # caller's, usually), so that no user code (a __setstate__, a class
    # import) runs on the pool's loop.

    def result(self, timeout: float | None = None) -> Any:
        value = super().result(timeout)
        if value is _UNDECODED:
            value = self._decode()
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        error = super().exception(timeout)
        # Finished with no exception: result(0) does not wait.
        if error is None and super().result(0) is _UNDECODED:
            try:
                self._decode()
            except BaseException as exc:
                return exc
        return error

    def _settled(self, outcome: ev.Outcome) -> None:
        """The pool settled the job (loop thread): this future is its ``JobSink``."""
        executor = self._executor()
        if executor is not None and self.job_id is not None:
            executor._job_settled(self.job_id, outcome)

    def _decode(self) -> Any:
        with self.lock:  # once, whichever threads ask at the same time
            if self._raw is not None:
                job_id, outcome = self._raw
                self._raw = None
                try:
                    self._decoded = outcome_value(job_id, outcome)
                except BaseException as exc:
                    self._decode_error = exc
            if self._decode_error is not None:
                raise self._decode_error
            return self._decoded


class _Undecoded:
    def __repr__(self) -> str:
        return "<a value not unpickled yet>"


_UNDECODED = _Undecoded()


class ExecutorOptions:
    """Per-call settings bound to an executor: ``executor.options(timeout=30).submit(fn, x)``.

    Every keyword argument of ``submit`` is the job's, so a job's own bound
    is set here (``Executor.submit`` has none, as ``ProcessPoolExecutor``'s).
    """

    __slots__ = ("_executor", "_timeout")

    def __init__(self, executor: Executor, timeout: float | None) -> None:
        self._executor = executor
        self._timeout = timeout

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._executor._submit(fn, args, kwargs, self._timeout)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, max_in_flight: int | None = None) -> Iterator[Any]:
        return self._executor._map(fn, iterables, timeout, chunksize, max_in_flight,
                                   self._timeout)


class Executor(cf.Executor):
    """A ``concurrent.futures.Executor`` running jobs in a supervised wayout pool.

    ``max_workers`` (default: the number of CPUs) children are started at
    once and kept warm; ``mp_context`` is a ``multiprocessing`` context or a
    start method's name; ``initializer``, ``initargs`` and
    ``max_tasks_per_child`` mean what they mean for ``ProcessPoolExecutor``.
    ``config`` is a ``PoolConfig`` for everything else, and any other keyword
    is a ``PoolConfig`` field (``job_timeout=60``, ``memory_limit_mb=500``...).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
        config: PoolConfig | None = None,
        **settings: Any,
    ) -> None:
        changes: dict[str, Any] = dict(settings)
        if max_workers is not None:
            check_max_workers(max_workers)
            changes.setdefault("max_children", max_workers)
            changes.setdefault("num_idle", max_workers)
        elif config is None:
            count = os.cpu_count() or 1
            changes.setdefault("max_children", count)
            changes.setdefault("num_idle", count)
        if mp_context is not None:
            method = mp_context if isinstance(mp_context, str) else mp_context.get_start_method()
            changes["start_method"] = method
        if initializer is not None:
            if not callable(initializer):
                raise TypeError("initializer must be a callable")
            changes["initializer"] = initializer
            changes["initargs"] = tuple(initargs)
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int) or max_tasks_per_child < 1:
                raise ValueError("max_tasks_per_child must be >= 1")
            changes["max_jobs_per_child"] = max_tasks_per_child
        self._config = pool_config(config, changes, "Executor")
        self._pool = Pool(self._config)  # refuses an unpicklable initializer here
        self._max_workers = self._config.max_children
        self._in_pool_limit = _IN_POOL_PER_WORKER * self._config.max_children
        self._lock = threading.Lock()
        self._pending: deque[_Work] = deque()
        self._shutdown = False
        self._broken: str | None = None
        # Loop thread only.
        self._in_pool: dict[int, _Work] = {}
        self._early: list[_Work] = []
        self._started = False
        # Under _lock: jobs handed to the loop thread and not settled yet, and
        # those of them the loop thread has not submitted to the pool yet (a
        # failing loop must still settle them: _break).
        self._handed = 0
        self._handing: set[_Work] = set()
        # Under _lock: status() requests not answered yet, and whether the loop
        # closed (a request the loop never got to is answered then: no hang).
        self._asked: set[cf.Future[PoolStatus]] = set()
        self._loop_closed = False
        self._results: queue.SimpleQueue[tuple[_Work, Any, BaseException | None] | None] = (
            queue.SimpleQueue())
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._loop_thread = threading.Thread(target=self._run_loop, name="wayout-executor",
                                             daemon=True)
        self._result_thread = threading.Thread(target=self._run_results,
                                               name="wayout-executor-results", daemon=True)
        self._result_thread.start()
        self._loop_thread.start()
        _executors.add(self)

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    @property
    def config(self) -> PoolConfig:
        return self._config

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Schedule ``fn(*args, **kwargs)``; every keyword is the job's (see ``options``)."""
        return self._submit(fn, args, kwargs, None)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1, max_in_flight: int | None = None) -> Iterator[Any]:
        """``fn`` over the iterables, in order, lazily.

        At most ``max_in_flight`` (default ``2 * max_workers``) jobs (chunks of
        ``chunksize`` calls each) are submitted ahead of the one being
        waited for; the iterables are read as results are taken. ``timeout``
        bounds the whole iteration from this call on (``TimeoutError``).
        Leaving the iteration early cancels what was submitted ahead.
        """
        return self._map(fn, iterables, timeout, chunksize, max_in_flight, None)

    def options(self, *, timeout: float | None = None) -> ExecutorOptions:
        """Per-call settings: ``executor.options(timeout=5).submit(fn, x)`` bounds it to 5 s."""
        job_timeout(self._config, timeout)  # a bad value is refused here (ConfigError)
        return ExecutorOptions(self, timeout)

    def status(self, timeout: float | None = None) -> PoolStatus:
        """The pool's ``PoolStatus``, read on its loop (from any thread).

        ``timeout`` bounds the wait for the loop (``TimeoutError``): a caller
        that must not block, such as a Dask worker's heartbeat, sets one. A
        request that timed out is withdrawn: the loop does not read it later.
        """
        answer: cf.Future[PoolStatus] = cf.Future()

        def read() -> None:
            # A plain callback, not a task: one withdrawn (cancelled) before
            # the loop got to it costs the loop nothing.
            if answer.set_running_or_notify_cancel():
                try:
                    answer.set_result(self._pool.status())
                except Exception as exc:  # the caller's, not the loop's
                    answer.set_exception(exc)

        with self._lock:
            closed = self._loop_closed
            if not closed:
                self._asked.add(answer)
        try:
            if closed:
                return self._pool.status()  # the executor was shut down
            try:
                self._loop.call_soon_threadsafe(read)
            except RuntimeError:  # the loop closed meanwhile
                return self._pool.status()
            try:
                return answer.result(timeout)
            except TimeoutError:
                answer.cancel()
                raise
        finally:
            with self._lock:
                self._asked.discard(answer)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more jobs; let the submitted ones finish (or cancel the pending
        ones), then close the pool. With ``wait``, return once every child is reaped
        and every future's callbacks ran."""
        with self._lock:
            self._shutdown = True
            cancelled = list(self._pending) if cancel_futures else []
            if cancel_futures:
                self._pending.clear()
        for work in cancelled:
            work.cancel()
        self._call_soon(self._check_stop)
        if wait:
            current = threading.current_thread()
            if current is not self._loop_thread:
                self._loop_thread.join()
            if current is not self._result_thread:
                self._result_thread.join()

    # ------------------------------------------------------------------
    # The caller's side
    # ------------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                timeout: float | None) -> cf.Future[Any]:
        if timeout is not None:
            job_timeout(self._config, timeout)
        with self._lock:
            self._refuse_if_closed()
        try:
            payload = pickle_job(fn, args, kwargs, self._config.max_message_bytes,
                                 self._pool._dumps)
        except InvalidJob as exc:
            refused: cf.Future[Any] = cf.Future()
            refused.set_exception(exc)
            return refused
        work = _Work(self, payload, timeout)
        # Handed over here, in the caller's thread, while the pool has room: a
        # handed job is past shutdown(cancel_futures=True), as a job in PPE's
        # call queue is, whenever the loop thread gets to run.
        with self._lock:
            # Again, where the job is counted: a shutdown() while it was pickled
            # may have stopped the loop (nothing was counted), which would drop
            # this hand-over and leave its future unsettled for good. Once
            # counted, the loop cannot stop before the job settles.
            self._refuse_if_closed()
            handed = self._handed < self._in_pool_limit
            if handed:
                self._handed += 1
                self._handing.add(work)
            else:
                self._pending.append(work)
        if handed:
            self._call_soon(self._hand, work)
        return work

    def _refuse_if_closed(self) -> None:
        """Refuse a new job once the executor is broken or shut down (under _lock)."""
        if self._broken is not None:
            raise BrokenProcessPool(self._broken)
        if self._shutdown:
            raise PoolClosed("cannot schedule new futures after shutdown")
        if _global_shutdown:
            raise PoolClosed("cannot schedule new futures after interpreter shutdown")

    def _map(self, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...],
             timeout: float | None, chunksize: int, max_in_flight: int | None,
             job_bound: float | None) -> Iterator[Any]:
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        window = max_in_flight if max_in_flight is not None else self._in_pool_limit
        if window < 1:
            raise ValueError("max_in_flight must be >= 1")
        end = None if timeout is None else timeout + time.monotonic()
        calls = zip(*iterables, strict=False)
        source: Iterator[Any]
        if chunksize == 1:
            source = calls

            def submit_one(item: Any) -> cf.Future[Any]:
                return self._submit(fn, item, {}, job_bound)
        else:
            source = iter(lambda: list(itertools.islice(calls, chunksize)), [])

            def submit_one(item: Any) -> cf.Future[Any]:
                return self._submit(_process_chunk, (fn, item), {}, job_bound)

        ahead: deque[cf.Future[Any]] = deque(submit_one(item)
                                             for item in itertools.islice(source, window))

        def results() -> Iterator[Any]:
            # No local may hold a result or its future while suspended: a value
            # the caller dropped must be freed (CPython's test_free_reference).
            try:
                while ahead:
                    following = next(source, _END)
                    if following is not _END:
                        ahead.append(submit_one(following))
                    del following
                    if chunksize == 1:
                        yield _result_or_cancel(ahead.popleft(), end)
                    else:
                        yield from _result_or_cancel(ahead.popleft(), end)
            finally:
                for future in ahead:
                    future.cancel()

        return results()

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: the executor is shut down already
            pass

    # ------------------------------------------------------------------
    # The loop thread
    # ------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        main = self._loop.create_task(self._main())
        try:
            self._loop.run_until_complete(main)
        except BaseException as exc:
            log.exception("wayout executor: its pool failed")
            self._break(f"the executor's pool failed ({_cause(exc)})")
            if not main.done():
                # The loop stopped under the pool (a BaseException out of one
                # of its callbacks): _main's own ending closes the pool, so
                # that no child outlives the executor.
                self._stop.set()
                try:
                    self._loop.run_until_complete(main)
                except BaseException:
                    log.exception("wayout executor: its pool could not be closed")
        finally:
            self._loop.close()
            self._answer_unread_status_requests()
            self._results.put(None)

    async def _main(self) -> None:
        pool = self._pool
        unsubscribe = pool.subscribe(self._on_command)
        try:
            starting = asyncio.ensure_future(pool.start())
            # One step of start() makes the pool's driver: jobs are queued from
            # then on, while the children start (PPE too takes jobs at once).
            await asyncio.sleep(0)
            self._started = True
            self._hand_early()  # not in this frame: it lives as long as the pool
            try:
                await starting
            except Exception as exc:
                # Every job handed so far fails with the reason, not as "closed".
                self._break(f"the executor's pool could not start ({_cause(exc)})")
                raise
            stop = asyncio.ensure_future(self._stop.wait())
            driver = pool._driver
            assert driver is not None
            await asyncio.wait((stop, driver), return_when=asyncio.FIRST_COMPLETED)
            if not stop.done():
                # The pool's supervisor loop ended under the executor (its core
                # raised): its children are dead and its jobs failed; no job
                # handed to it now would ever settle.
                stop.cancel()
                crash = pool._crash
                self._break("the executor's pool stopped"
                            + ("" if crash is None else f" ({_cause(crash)})"))
        finally:
            try:
                await pool.close()  # settles every job it has, through _Work._settled
            finally:
                # A job left in the pool (it stopped, or could not close) still settles.
                left, self._in_pool = self._in_pool, {}
                for work in left.values():
                    error = (PoolClosed("the executor's pool closed") if self._broken is None
                             else BrokenProcessPool(self._broken))
                    self._results.put((work, None, error))
                # No cycle through the pool: a shut-down executor is freed, with
                # its threads, when its user drops it.
                unsubscribe()

    def _hand_early(self) -> None:
        early, self._early = self._early, []
        for work in early:
            self._hand(work)

    def _hand(self, work: _Work) -> None:
        """Submit a handed job to the pool (loop thread); its slot is released when it settles."""
        if not self._started:
            self._early.append(work)
            return
        with self._lock:
            self._handing.discard(work)
            broken = self._broken is not None  # _break settled it already
        if broken or work.cancelled():
            self._release()
            return
        payload, work.payload = work.payload, None  # the pool keeps it
        assert payload is not None
        # Known here before the core takes the job in: the core may settle it
        # at once (a pool that no longer accepts jobs), through work._settled.
        job_id = work.job_id = self._pool._new_job_id()
        self._in_pool[job_id] = work
        try:
            self._pool._accept(job_id, work, payload, work.timeout, feed=True)
        except Exception as exc:
            if self._in_pool.pop(job_id, None) is not None:
                self._results.put((work, None, exc))
                self._release()

    def _release(self) -> None:
        """One handed job is over (loop thread): hand the next pending ones."""
        moved: list[_Work] = []
        with self._lock:  # one section: this runs once per job
            self._handed -= 1
            while self._pending and self._handed < self._in_pool_limit:
                moved.append(self._pending.popleft())
                self._handed += 1
            self._handing.update(moved)
            idle = self._idle()
        for work in moved:
            self._hand(work)
        if idle:
            self._stop.set()

    def _on_command(self, command: ev.Command) -> None:
        if (type(command) is ev.Transitioned and command.kind == "job"
                and command.dest == "running"):
            work = self._in_pool.get(command.ident)
            if work is not None:
                # No user code runs here: this only moves a future that is not
                # done to RUNNING (cancel() ran its callbacks in its caller's thread).
                with work.lock:
                    if not work.running() and not work.done():
                        work.set_running_or_notify_cancel()

    def _job_settled(self, job_id: int, outcome: ev.Outcome) -> None:
        """A job settled (loop thread): the first of its two reports finishes it."""
        work = self._in_pool.pop(job_id, None)
        if work is not None:
            self._finish(work, job_id, outcome)

    def _finish(self, work: _Work, job_id: int, outcome: ev.Outcome) -> None:
        # A future nobody added a callback to is settled here, under its lock
        # (no callback can be added meanwhile), with the outcome still pickled:
        # the waiter wakes without a hop through the result thread. One with
        # callbacks goes to the result thread, which runs them.
        # Only a value: a failure is set by the result thread as an exception,
        # so that waiters (wait(FIRST_EXCEPTION), as_completed) see it as one.
        with work.lock:
            here = outcome.state == "done" and not work.has_callbacks()
            if here and not work.done() and (
                    work.running() or work.set_running_or_notify_cancel()):
                work._raw = (job_id, outcome)
                work.set_result(_UNDECODED)
        if not here:
            self._results.put((work, outcome, None))
        del work, outcome
        self._release()

    def _cancelled(self, work: _Work) -> None:
        """A future the user cancelled (any thread): cancel its job, if handed over."""
        def cancel() -> None:
            job_id = work.job_id
            if job_id is not None and job_id in self._in_pool:
                self._pool._post(ev.Cancel, job=job_id)
        self._call_soon(cancel)

    def _answer_unread_status_requests(self) -> None:
        """Answer every status() request the closed loop will never read (loop
        thread, after the loop closed): one scheduled after its last pass."""
        with self._lock:
            self._loop_closed = True
            left, self._asked = self._asked, set()
        for answer in left:
            if not answer.done() and answer.set_running_or_notify_cancel():
                try:
                    answer.set_result(self._pool.status())
                except Exception as exc:  # the caller's, not this thread's
                    answer.set_exception(exc)

    def _check_stop(self) -> None:
        with self._lock:
            idle = self._idle()
        if idle:
            self._stop.set()

    def _idle(self) -> bool:
        """Shut down, with no job pending or handed: the loop may stop (under _lock)."""
        return self._shutdown and not self._pending and self._handed == 0

    def _break(self, reason: str) -> None:
        """Refuse new jobs, and settle every job the pool will not get."""
        with self._lock:
            self._broken = reason
            left = [*self._pending, *self._handing]
            self._pending.clear()
            self._handing.clear()
        for work in left:
            self._results.put((work, None, BrokenProcessPool(reason)))

    # ------------------------------------------------------------------
    # The result thread
    # ------------------------------------------------------------------

    def _run_results(self) -> None:
        # Each item is moved into ``box`` and out of it by _deliver: no local of
        # this thread holds a job once its future is set (test_free_reference).
        box: list[Any] = []
        while True:
            box.append(self._results.get())
            if box[-1] is None:
                return
            try:
                self._deliver(box)
            except BaseException as exc:
                log.error("wayout executor: a future's done-callback raised %s: %s",
                          type(exc).__name__, exc, exc_info=True)
            box.clear()

    def _deliver(self, box: list[Any]) -> None:
        work, outcome, error = box.pop()
        with work.lock:  # atomic with cancel(), as in _on_command and _finish
            if work.done():
                return  # cancelled (cancel() notified its waiters), or set already
            if not work.running():
                work.set_running_or_notify_cancel()
        if error is None:
            assert isinstance(outcome, ev.Outcome) and work.job_id is not None
            try:
                box.append(outcome_value(work.job_id, outcome))
            except BaseException as exc:
                error = exc
        del outcome
        # A future nobody added a callback to is set under its own lock, and
        # this thread drops it before the lock is released: a waiter returns
        # only once the executor holds nothing of it, so the caller's last
        # reference frees the value (PPE's manager thread leaves a moment
        # when it still does). With callbacks, it is set outside the lock, so
        # that a callback may wait for another thread that reads the future.
        with work.lock:
            quiet = not work.has_callbacks()
            if quiet:
                _settle(work, box, error)
                del work, error
        if not quiet:
            _settle(work, box, error)

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return f"<wayout Executor max_workers={self._max_workers} {state}>"


def _cause(exc: BaseException) -> str:
    """An error as a broken executor's reason names it."""
    return f"{type(exc).__name__}: {exc}"


def _settle(future: cf.Future[Any], box: list[Any], error: BaseException | None) -> None:
    if error is None:
        future.set_result(box.pop())
    else:
        future.set_exception(error)


_END = object()

