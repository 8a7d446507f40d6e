"""``Pool``: a supervisor core driving real child processes.

One asyncio task per pool (the *driver*) owns the core. It waits for the next
event, or for ``core.next_deadline()`` on the clock, whichever comes first;
feeds the core; performs the commands the core returns; and waits again. Once
the core runs, the driver's timer is the only one: there is no per-child
thread, no polling and no timeout of the runtime's own. Events reach it
through an in-memory inbox from three places: the user's calls (``submit``,
``cancel``, ``drain``, ``close``), the control sockets of the children, and
their death watches (``runtime.process``). An event of the last two kinds
(and a job ``runtime.Executor`` hands over) is fed to the core at once, by
the callback that brought it, when the driver is parked with nothing half
done (``_post_and_feed``): what the driver's next step would do, one loop
iteration sooner. Either way ``core.handle`` is called on the loop's thread,
one event at a time, in the inbox's order.

What the driver decides without the core, and why it is I/O:

* Before its first step under forkserver, the driver waits (in a thread,
  bounded by ``start_timeout`` with ``asyncio.wait_for``) for
  multiprocessing's forkserver to finish importing its preload. The core
  knows no forkserver: the wait is about how the runtime makes a process,
  not about any child, and it only delays the first ``Start``, whose own
  ``start_timeout`` deadline then runs in full. A forkserver that fails or
  is late changes nothing the core decides (the first spawn meets the same
  problem and reports it per child).
* Under forkserver, processes are started on a spawner thread (``_Spawner``),
  and a Kill the core sends for a child still in the forkserver's handshake
  (at ``spawn_timeout``, or ``kill_timeout`` after a close's kill) kills the
  forkserver, which ends the handshake; the core then hears ChildExited, as
  for any start that failed. The deadline is the core's; what a kill of a
  process that does not exist yet means is the runtime's.
* When the driver stops before the core closed the pool (the task was
  cancelled, or the core raised), no core is left to decide:
  ``_kill_everything_now`` kills and reaps every child at once and settles
  every waiting job with ``PoolClosed`` itself, so that nothing outlives the
  pool and no caller waits forever.
* ``Transitioned`` records are the core's statements of what changed; the
  driver reads two of them as orders about its own objects: a pool that
  entered ``closed`` ends the driver, and a child that entered ``abandoned``
  moves its process object to the watch list, so that a late reap still
  closes its descriptors. Neither changes a decision of the core's.

Each event is stamped with the clock when the driver takes it out of the
inbox, so the core sees time only move forward. A wake-up that comes late
(the event loop was blocked, the process stopped) is fed with the true time,
never the time the timer was due: that is how the core notices its own stall
and re-probes the children instead of blaming them for it (README, "When the
supervisor itself stalls"); its warning reaches the ``wayout`` logger.

The pickled payloads: a job's function and arguments are pickled by
``submit`` (an unpicklable job is refused there, with ``InvalidJob``); its
pickled return value is unpickled only by ``await``-ing its ``JobHandle``, in
the caller's task, never in the driver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import multiprocessing
import pickle
import queue
import re
import signal
import threading
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import asdict, dataclass, fields
from types import TracebackType
from typing import Any, NamedTuple, Protocol, get_args

from fsm import events as ev
from fsm.config import PoolConfig, job_timeout
from fsm.core import SupervisorCore
from fsm.errors import ChildDied as CoreChildDied
from fsm.errors import ConfigError, JobFailed, PoolClosed, WayoutError
from runtime import child, child_logs, protocol
from runtime.clock import Clock, MonotonicClock, TimerHandle
from runtime.errors import ChildDied, InvalidJob, WrongLoop, remote_error, reraise_as
from runtime.process import ChildProcess, kill_forkserver, warm_forkserver

log = logging.getLogger("wayout")

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _message_events() -> dict[type, tuple[type[ev.Event], tuple[str, ...]]]:
    """Each child-to-parent message type -> the ``fsm.events`` event of the same
    name, and the message fields the event carries (every field of the event
    but ``now`` and ``child``, which the parent adds). ``LogRecord`` is no event
    (``runtime.child_logs`` re-emits it); ``Hello.pid`` is not carried: the core
    learnt the pid from ``Spawned``, before the child could say hello."""
    table: dict[type, tuple[type[ev.Event], tuple[str, ...]]] = {}
    for message in get_args(protocol.FromChild):
        if message is protocol.LogRecord:
            continue
        event = getattr(ev, message.__name__)
        carried = {f.name for f in fields(event)} - {"now", "child"}
        table[message] = (event, tuple(n for n in message.__struct_fields__ if n in carried))
    return table


#: The most the driver feeds the core in one step before it yields to the loop:
#: events from its inbox, and commands performed for deadlines that fired. A
#: step costs tens of microseconds a unit, so a mass of submissions or of
#: queue timeouts is taken in slices of a few milliseconds, and other tasks
#: (and the replies of the children) run in between.
STEP_EVENTS = 256

#: The one mapping from what a child says to what the core hears.
MESSAGE_EVENTS = _message_events()


class TransitionRecord(NamedTuple):
    """One state change of a child, a job or the pool, as the core reported it."""

    kind: str
    ident: int
    source: str
    event: str
    dest: str
    time: float


@dataclass(frozen=True)
class PoolStatus:
    """A snapshot of the pool: counts per lifecycle state and whether it can take a job now."""

    state: str
    available: bool
    reason: str
    children: Mapping[str, int]
    jobs: Mapping[str, int]
    queued: int
    warm_target: int
    restart_budget: int
    backoff_level: int
    #: child id -> pid of every process that was started and not reaped yet
    pids: Mapping[int, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobHandle:
    """A submitted job. Await it for the function's value or its typed error.

    ``state`` is the job's lifecycle state (``submitted`` until the supervisor
    has taken it in). ``cancel()`` asks the supervisor to cancel it; awaiting
    it then raises ``JobCancelled`` (unless it finished first).
    """

    __slots__ = ("_future", "_id", "_pool", "_value", "_value_error", "_value_ready")

    def __init__(self, pool: Pool, job_id: int, future: asyncio.Future[ev.Outcome]) -> None:
        self._pool = pool
        self._id = job_id
        self._future = future
        self._value: Any = None
        self._value_error: BaseException | None = None
        self._value_ready = False

    @property
    def id(self) -> int:
        return self._id

    @property
    def state(self) -> str:
        if self._future.done():
            return self._future.result().state
        return self._pool._job_state(self._id)

    def done(self) -> bool:
        """True once the job reached its outcome."""
        return self._future.done()

    def cancel(self) -> None:
        """Ask for the job to be cancelled (no effect once it is done)."""
        if not self._future.done():
            self._pool._post(ev.Cancel, job=self._id)

    def _settled(self, outcome: ev.Outcome) -> None:
        """The job's outcome (the driver's; a second one is ignored)."""
        if not self._future.done():
            self._future.set_result(outcome)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        # Shielded: a caller that gives up waiting must not cancel the outcome
        # itself (the driver settles it, and other awaiters may want it).
        outcome = await asyncio.shield(self._future)
        if not self._value_ready:
            if outcome.state != "done":
                # Made, not raised: a raise here would keep this frame and a
                # traceback alive with the handle, objects that every full
                # collection of the garbage collector walks (issue 15: 40,000
                # jobs failed at once).
                self._value_error = outcome_error(self._id, outcome)
            else:
                try:
                    self._value = outcome_value(self._id, outcome)
                except BaseException as exc:  # its value cannot be unpickled
                    self._value_error = exc
            self._value_ready = True
            if outcome.value is not None:
                # Keep the value only: the pickled bytes would cost its size again.
                done: asyncio.Future[ev.Outcome] = asyncio.get_running_loop().create_future()
                done.set_result(dataclasses.replace(outcome, value=None))
                self._future = done
        problem = self._value_error
        if problem is not None:
            # Each await raises it afresh, as asyncio.Future.result() does: the
            # tracebacks of earlier awaits do not pile up on the one exception.
            raise problem.with_traceback(None)
        return self._value

    def __repr__(self) -> str:
        return f"<JobHandle {self._id} {self.state}>"


class JobSink(Protocol):
    """What the pool settles a job through: a ``JobHandle``, or the executor's
    future (``runtime.Executor``), which needs no asyncio future of its own."""

    def _settled(self, outcome: ev.Outcome) -> None: ...


def outcome_value(job_id: int, outcome: ev.Outcome) -> Any:
    """The value of a job that ended as ``outcome``, or raise its typed error.

    The one place a job's pickled value or exception is unpickled in the
    parent: by the awaiting caller (or the Executor's result thread), never by
    the driver. Whatever unpickling raises, ``SystemExit`` and
    ``KeyboardInterrupt`` included, becomes a ``JobFailed``.
    """
    if outcome.state != "done":
        raise outcome_error(job_id, outcome)
    try:
        return pickle.loads(outcome.value)
    except BaseException as problem:
        raise JobFailed(
            f"job {job_id} returned a value that cannot be unpickled in the parent "
            f"({type(problem).__name__}: {_safe_str(problem)}); make its type importable here",
            job_id=job_id,
            remote_type=type(problem).__name__,
            remote_message=_safe_str(problem),
        ) from problem


def outcome_error(job_id: int, outcome: ev.Outcome) -> BaseException:
    """The typed error of a job that ended without a value."""
    error = outcome.error
    if error is None:  # the core always names one for a failed job; say so if not
        return WayoutError(f"job {job_id} ended {outcome.state}: {outcome.message}")
    if issubclass(error, JobFailed):
        return remote_error(
            outcome.remote_exception,
            message=outcome.message,
            job_id=job_id,
            remote_type=outcome.remote_type,
            remote_message=outcome.remote_message,
            remote_traceback=outcome.remote_traceback,
        )
    if issubclass(error, CoreChildDied):
        return ChildDied(_name_signal(outcome.message), job_id=job_id)
    return error(outcome.message, job_id=job_id)


_EXIT_CODE = re.compile(r"exited with code -(\d+)")


def _name_signal(message: str) -> str:
    """Add the name of the signal a negative exit code means: ``... (SIGSEGV)``."""
    found = _EXIT_CODE.search(message)
    if found is None:
        return message
    try:
        name = signal.Signals(int(found.group(1))).name
    except ValueError:
        return message
    return f"{message} (killed by {name})"


class JobOptions:
    """Per-call settings bound to a pool: ``pool.options(timeout=30).run(fn, x, timeout=1)``.

    Its ``submit`` and ``run`` pass *every* keyword argument to the job,
    ``timeout`` included: the way to call a function that has a ``timeout``
    parameter of its own.
    """

    __slots__ = ("_pool", "_timeout")

    def __init__(self, pool: Pool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobHandle:
        """As ``Pool.submit``, with these options and every keyword argument the job's."""
        return self._pool._submit(fn, args, kwargs, self._timeout)

    async def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """As ``Pool.run``, with these options and every keyword argument the job's."""
        return await self._pool._run(self.submit(fn, *args, **kwargs))


class Pool:
    """A pool of prewarmed child processes, supervised by ``fsm.core.SupervisorCore``.

    Use it as ``async with Pool(PoolConfig(...)) as pool:``. Entering starts
    ``num_idle`` children and returns once they are ready or ``start_timeout``
    passed (the pool then runs, unavailable); leaving closes it, and returns
    once every child is reaped (bounded by the core's deadlines), whether the
    block ended normally, by an exception or by cancellation.

    All methods must be called from the event loop's thread. Under spawn and
    forkserver, children import the module that defines ``fn`` (and under
    spawn the main module too): as with any ``multiprocessing`` code, guard a
    script's entry with ``if __name__ == "__main__":``. Under forkserver,
    processes are started on a thread of the pool's (the forkserver may not
    answer); a forkserver that starts no child within ``spawn_timeout`` is
    killed, with its children, and a new one starts.

    ``clock`` replaces the monotonic clock (tests use ``ManualClock``).
    ``child_main`` replaces the child's entry point (fault injection in tests).
    ``max_transitions`` bounds the transition history ``transitions()`` keeps.
    """

    def __init__(
        self,
        config: PoolConfig | None = None,
        *,
        clock: Clock | None = None,
        child_main: Callable[..., None] | None = None,
        max_transitions: int = 10_000,
    ) -> None:
        if config is None:
            config = PoolConfig()
        if not isinstance(config, PoolConfig):
            raise ConfigError(f"Pool needs a PoolConfig, got {type(config).__name__}")
        self._config = config
        self._dumps = serializer(config)
        self._init_payload = _pickle_initializer(config, self._dumps)
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._child_main = child_main if child_main is not None else child.main
        self._core: SupervisorCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._driver: asyncio.Task[None] | None = None
        self._closed = False
        self._crash: BaseException | None = None
        # Events waiting for the driver: (event class, fields but ``now``).
        self._inbox: deque[tuple[type[ev.Event], dict[str, Any]]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        # True while _post_and_feed feeds the core.
        self._feeding = False
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._children: dict[int, ChildProcess] = {}
        # Children the core spawned in this driver step, started at its end.
        self._to_start: list[int] = []
        # Forkserver children handed to the spawner thread, not started yet.
        self._starting: dict[int, _Start] = {}
        self._spawner: _Spawner | None = None
        self._finished = False
        self._abandoned: list[ChildProcess] = []
        self._handles: dict[int, JobSink] = {}
        self._payloads: dict[int, bytes] = {}
        self._job_ids = itertools.count()
        self._transitions: deque[TransitionRecord] = deque(maxlen=max_transitions)
        self._listeners: list[Callable[[ev.Command], None]] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._availability_reason = "the pool was not started"
        self._performers: dict[type[ev.Command], Callable[[Any], None]] = {
            ev.Transitioned: self._do_transitioned,
            ev.SendJob: self._do_send_job,
            ev.SettleJob: self._do_settle,
            ev.SendPing: self._do_ping,
            ev.SpawnChild: self._do_spawn,
            ev.SendInit: self._do_init,
            ev.SendCancel: self._do_cancel,
            ev.SendStop: self._do_stop,
            ev.Kill: self._do_kill,
            ev.SampleMemory: self._do_sample_memory,
            ev.ReportAvailability: self._do_report_availability,
            ev.Log: self._do_log,
        }

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    @property
    def config(self) -> PoolConfig:
        return self._config

    @property
    def running(self) -> bool:
        """True while the supervisor loop runs (from ``start()`` until the pool closed)."""
        return self._driver is not None and not self._driver.done()

    async def __aenter__(self) -> Pool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the pool; return once it left ``starting`` (bounded by ``start_timeout``)."""
        if self._driver is not None:
            raise WayoutError("this Pool was started already; a Pool starts once")
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # A child (or the forkserver) is importing the parent's main module,
            # which starts a pool at import: every child would start pools of
            # its own. multiprocessing refuses to start processes here too.
            raise WayoutError(
                "a Pool was started while a child process imports the main module: "
                "start pools under `if __name__ == '__main__':` in the main script")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        # The core's default, compiled engine: the same lifecycle specs without
        # the transitions library's call overhead on the hot path (71 -> 22 us
        # of core time per job); tests/test_core_engines.py proves both engines
        # behave alike.
        core = SupervisorCore(self._config, now=self._clock.now())
        self._core = core
        self._driver = self._loop.create_task(self._drive(), name="wayout-pool-driver")
        self._post(ev.Start)
        try:
            await self._wait(lambda: core.pool_state != "starting")
        except BaseException:
            # Entering failed or was cancelled: __aexit__ will not run, so close here.
            await self.close()
            raise

    async def _warm_forkserver(self) -> None:
        """Let the forkserver finish its preload (the child runtime and the main
        script) in a thread, bounded by start_timeout, so that the first spawn
        does not hold up the event loop while it imports them."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def report(error: BaseException | None) -> None:
            if ready.done():
                return
            if error is None:
                ready.set_result(None)
            else:
                ready.set_exception(error)

        def warm() -> None:
            error: BaseException | None = None
            try:
                warm_forkserver()
            except BaseException as exc:  # reported on the loop
                error = exc
            try:
                loop.call_soon_threadsafe(report, error)
            except RuntimeError:
                pass  # the loop is gone: nobody waits any more

        # A daemon thread, not the loop's executor: a forkserver still busy
        # must not hold up the program's exit.
        threading.Thread(target=warm, name="wayout-forkserver-warm", daemon=True).start()
        try:
            await asyncio.wait_for(ready, self._config.start_timeout)
        except TimeoutError:
            log.warning("wayout: the forkserver did not finish its preload within "
                        "start_timeout=%gs; the pool starts anyway",
                        self._config.start_timeout)
        except Exception as exc:
            # The first spawn meets the same problem and reports it per child.
            log.warning("wayout: the forkserver could not be warmed: %s: %s",
                        type(exc).__name__, exc)

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> JobHandle:
        """Queue ``fn(*args, **kwargs)`` to run in a child; ``timeout`` overrides ``job_timeout``.

        ``timeout`` is the one keyword that is wayout's, not the job's; to pass
        a ``timeout`` argument to ``fn`` itself, use ``pool.options(timeout=...)``.

        Raises ``InvalidJob`` at once if the job cannot be sent to a child,
        ``PoolClosed`` if the pool is not running, and ``WrongLoop`` when called
        from another thread or event loop. Every other outcome comes from
        awaiting the handle.
        """
        return self._submit(fn, args, kwargs, timeout)

    async def run(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` in a child and return its value, or raise its typed error.

        If the calling task is cancelled, the job is cancelled too.
        """
        return await self._run(self._submit(fn, args, kwargs, timeout))

    def options(self, *, timeout: float | None = None) -> JobOptions:
        """Per-call settings for jobs whose keyword arguments are all their own
        (``JobOptions``): ``await pool.options(timeout=5).run(fetch, url, timeout=1)``
        runs ``fetch(url, timeout=1)`` with a 5-second bound."""
        job_timeout(self._config, timeout)  # refuse a bad timeout here (ConfigError)
        return JobOptions(self, timeout)

    async def _run(self, handle: JobHandle) -> Any:
        try:
            return await handle
        except asyncio.CancelledError:
            handle.cancel()
            raise

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                timeout: float | None) -> JobHandle:
        self._check_caller(fn)
        job_timeout(self._config, timeout)  # refuse a bad timeout at the call (ConfigError)
        return self._submit_payload(self._pickle_job(fn, args, kwargs), timeout)

    def _check_caller(self, fn: object) -> None:
        driver = self._driver
        if driver is None or driver.done() or self._loop is None:
            state = "not started" if driver is None else "closed"
            raise PoolClosed(f"cannot submit {_name(fn)}: the pool is {state}")
        # On the loop's thread with no loop running (between run_until_complete
        # calls) is fine: the job waits in the inbox until the loop runs again.
        if threading.get_ident() != self._loop_thread:
            where = "another thread"
        elif _running_loop() not in (None, self._loop):
            where = "another event loop"
        else:
            return
        raise WrongLoop(
            f"cannot submit {_name(fn)} from {where}: a Pool belongs to the event loop "
            "it was started on; from other threads or loops use runtime.Executor, "
            "whose methods are thread-safe")

    def _submit_payload(self, payload: bytes, timeout: float | None) -> JobHandle:
        """Queue a job already pickled by ``pickle_job`` (the caller checked the pool)."""
        assert self._loop is not None
        handle = JobHandle(self, self._new_job_id(), self._loop.create_future())
        self._accept(handle.id, handle, payload, timeout, feed=False)
        return handle

    def _new_job_id(self) -> int:
        return next(self._job_ids)

    def _accept(self, job_id: int, sink: JobSink, payload: bytes, timeout: float | None, *,
                feed: bool) -> None:
        """Queue job ``job_id``, to be settled through ``sink`` (on the loop).

        With ``feed``, the core takes it in at once if the driver is parked
        (``_post_and_feed``: the executor's hand-offs, one at a time), so
        ``sink`` may be settled before this returns (a pool that no longer
        accepts jobs settles it at once).
        """
        self._handles[job_id] = sink
        self._payloads[job_id] = payload
        if feed:
            self._post_and_feed(ev.Submit, job=job_id, timeout=timeout)
        else:
            self._post(ev.Submit, job=job_id, timeout=timeout)

    def status(self) -> PoolStatus:
        core = self._core
        pids = {cid: proc.pid for cid, proc in self._children.items() if proc.pid is not None}
        if core is None:
            return PoolStatus(
                state="unstarted", available=False, reason=self._availability_reason,
                children={}, jobs={}, queued=0, warm_target=self._config.num_idle,
                restart_budget=self._config.max_restarts, backoff_level=0, pids=pids,
            )
        st = core.status()
        return PoolStatus(
            state=st.pool_state,
            available=st.available,
            reason=st.reason,
            children=dict(st.children),
            jobs=dict(st.jobs),
            queued=st.queued,
            warm_target=st.warm_target,
            restart_budget=st.restart_budget,
            backoff_level=st.backoff_level,
            pids=pids,
        )

    def subscribe(self, listener: Callable[[ev.Command], None]) -> Callable[[], None]:
        """Call ``listener`` with every command the core issues, after it was performed.

        For observers (metrics, live views, trace recorders): they see exactly
        what the supervisor decided (``Transitioned``, ``Kill``, ``SettleJob``,
        ``ReportAvailability``, ``Log``...), in order, on the event loop. A
        listener must be quick and must not raise (if it does, the error is
        logged and supervision goes on). Returns a function that unsubscribes.
        """
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def transitions(self) -> list[TransitionRecord]:
        """Every state change so far (the latest ``max_transitions``), oldest first."""
        return list(self._transitions)

    async def wait_for(
        self, predicate: Callable[[PoolStatus], bool], timeout: float | None = None
    ) -> PoolStatus:
        """Wait until ``predicate(status)`` holds, checked after every supervisor step.

        Raises ``TimeoutError`` after ``timeout`` seconds (real time), and
        ``PoolClosed`` if the pool closes first without it holding.
        """
        async with asyncio.timeout(timeout):
            await self._wait(lambda: predicate(self.status()))
        return self.status()

    async def drain(self) -> None:
        """Accept no new job, let accepted ones finish (within ``drain_timeout``), then close."""
        if self._driver is None:
            return
        self._post(ev.Drain)
        await self._until_closed()

    async def close(self) -> None:
        """Settle every job, stop then kill every child; return once all are reaped."""
        if self._driver is None:
            return
        self._post(ev.Close)
        await self._until_closed()

    # ------------------------------------------------------------------
    # Feeding the driver
    # ------------------------------------------------------------------

    def _post(self, event: type[ev.Event], **fields: Any) -> None:
        """Queue an event for the driver and wake it (the user's calls: a burst of
        them is taken in STEP_EVENTS at a time, between which the caller runs)."""
        self._inbox.append((event, fields))
        if not self._feeding:  # else the pass that feeds the core reads it
            self._wake_driver()

    def _wake_driver(self, error: Exception | None = None) -> None:
        """Resume the parked driver (once: whoever wakes it first wins)."""
        wakeup = self._wakeup
        if wakeup is None or wakeup.done():
            return
        if error is None:
            wakeup.set_result(None)
        else:
            wakeup.set_exception(error)

    def _post_and_feed(self, event: type[ev.Event], **fields: Any) -> None:
        """Queue an event and, if the driver is parked, feed the core at once.

        For the events the loop's own callbacks bring (a child's messages and
        exit, a start the spawner finished) and the executor's hand-offs, each
        one at a time. Waking the driver costs a loop iteration per event (the
        task's step is a callback of its own): a warm job's round trip has
        three (its submission, the child's ack, its result). Parked, the driver
        holds nothing half done, so feeding the core here is what its next
        step would do, in the same order. The driver is still the only one
        that yields, starts children and ends the pool: whatever asks for one
        of those (children to start, more events than one step takes, the pool
        closed) wakes it, and it takes over. A core that raises here fails the
        driver, as if it had fed the event itself.
        """
        self._inbox.append((event, fields))
        wakeup = self._wakeup
        if wakeup is None or wakeup.done() or self._feeding:
            return  # the driver runs, or will: it reads the inbox
        core = self._core
        assert core is not None
        # An event a performer posts meanwhile is read by this same pass.
        self._feeding = True
        try:
            more = self._run_due(core)
        except Exception as exc:
            self._wake_driver(exc)
            return
        finally:
            self._feeding = False
        if more or self._closed or self._to_start:
            # Guarded, not ``wakeup.set_result``: whatever this pass performed
            # may have woken the driver already, and a second set_result would
            # raise InvalidStateError out of the callback that fed the event.
            self._wake_driver()
            return
        self._check_waiters()
        self._arm_timer(core.next_deadline())

    def _wake(self) -> None:
        self._timer = None
        self._timer_at = None
        self._wake_driver()

    def _job_state(self, job_id: int) -> str:
        core = self._core
        record = core.jobs.get(job_id) if core is not None else None
        return "submitted" if record is None else record.state

    async def _wait(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        driver = self._driver
        if driver is None or driver.done():
            raise PoolClosed("the pool is not running")
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _check_waiters(self) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def _until_closed(self) -> None:
        # Closing must finish even if our caller is cancelled meanwhile, or
        # children would outlive the pool: keep waiting (the core's deadlines
        # bound it), then re-raise the cancellation.
        driver = self._driver
        assert driver is not None
        cancelled = False
        while not driver.done():
            try:
                await asyncio.wait((driver,))
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        if self._crash is not None:
            raise WayoutError(
                f"the pool's supervisor loop failed ({type(self._crash).__name__}: "
                f"{self._crash}); its children were killed"
            ) from self._crash

    # ------------------------------------------------------------------
    # The driver
    # ------------------------------------------------------------------

    async def _drive(self) -> None:
        assert self._core is not None and self._loop is not None
        core = self._core
        loop = self._loop
        try:
            if self._config.start_method == "forkserver":
                # Before the first spawn; the pool is starting meanwhile.
                await self._warm_forkserver()
            while True:
                more = self._run_due(core)
                if self._closed:
                    return
                self._check_waiters()
                if self._to_start:
                    # Starting a process takes milliseconds (a fork, or a round
                    # trip to the forkserver). Yield first, so that the tasks this
                    # step woke (a caller whose job just failed, a waiter on the
                    # pool's status) learn of a death before its replacement
                    # starts. Only this task feeds the core, so nothing it
                    # decided can change meanwhile.
                    await asyncio.sleep(0)
                    self._start_children()
                    continue
                if more:
                    # A mass of due deadlines or events (a burst of submissions,
                    # a queue of jobs timing out together): fed STEP_EVENTS at
                    # a time, and the loop runs its other tasks in between.
                    await asyncio.sleep(0)
                    continue
                if self._inbox:
                    continue
                self._arm_timer(core.next_deadline())
                self._wakeup = loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
        except asyncio.CancelledError as exc:
            self._crash = exc
            raise
        except Exception as exc:
            # Reported here and by close(); not re-raised, so that the task's
            # exception is not "never retrieved" when nobody closes the pool.
            self._crash = exc
            log.exception("wayout pool supervisor loop failed")
        finally:
            self._finish()

    def _run_due(self, core: SupervisorCore) -> bool:
        """Feed due deadlines and queued events, until none is left or STEP_EVENTS
        of them were fed; True if some are left (the driver yields, then goes on)."""
        clock = self._clock
        inbox = self._inbox
        budget = STEP_EVENTS
        while budget > 0:
            now = clock.now()
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                commands = core.handle(ev.DeadlineReached(now=now, most=budget))
                self._perform(commands)
                after = core.next_deadline()
                if after is not None and after <= now and not commands:
                    # Nothing fired, yet something is due: feeding it again
                    # would spin forever without time passing.
                    raise WayoutError(
                        f"the core kept a deadline ({after}) at or before now ({now}) "
                        "after DeadlineReached"
                    )
                # A unit per command performed: each deadline that fired made
                # one at least, so a core that kept some due spent the budget.
                budget -= max(1, len(commands))
                continue
            if not inbox:
                return False
            for _ in range(min(len(inbox), budget)):
                event, fields = inbox.popleft()
                self._perform(core.handle(event(now=clock.now(), **fields)))
                budget -= 1
        return True

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline is None:
            return
        # An earlier timer still armed is kept: it wakes us a little early and
        # we re-arm then. Re-arming on every event would churn the loop's heap.
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._clock.call_at(deadline, self._wake)

    def _perform(self, commands: list[ev.Command]) -> None:
        performers = self._performers
        try:
            for command in commands:
                performers[type(command)](command)
        finally:
            # Even if a performer failed, the core has decided all of them:
            # recorders (traces, metrics) must see the whole batch.
            for listener in self._listeners:
                for command in commands:
                    try:
                        listener(command)
                    except Exception:  # an observer must never break supervision
                        log.exception("wayout: a pool listener raised; it stays subscribed")

    def _finish(self) -> None:
        """The driver is ending: nothing may be left running or open."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closed:
            self._kill_everything_now()
        for proc in [*self._children.values(), *self._abandoned]:
            proc.abandon()
        self._children.clear()
        self._to_start.clear()  # decided, never started: no process to end
        for start in self._starting.values():
            start.cancelled = True  # a start that still ends kills its process (_started)
        self._starting.clear()
        if self._spawner is not None:
            self._spawner.stop()
            self._spawner = None
        self._abandoned.clear()
        self._payloads.clear()
        self._closed = True
        self._finished = True
        for predicate, future in self._waiters:
            if not future.done():
                if predicate():
                    future.set_result(None)
                else:
                    future.set_exception(PoolClosed("the pool closed"))

    def _kill_everything_now(self) -> None:
        # The driver stops before the core closed the pool (it was cancelled, or
        # failed): no supervisor is left to bound these children, so they die
        # now, and every caller still waiting learns the pool is gone.
        procs = list(self._children.values())
        if procs:
            log.error("wayout pool stopped without closing: killing %d children", len(procs))
        for proc in procs:
            proc.kill()
        for proc in procs:
            if not proc.kill_and_reap_now(self._config.kill_timeout):
                log.error("child %d (pid %s) was not reaped after SIGKILL", proc.child_id,
                          proc.pid)
        cause = self._crash
        why = "it was cancelled" if isinstance(cause, asyncio.CancelledError) or cause is None \
            else f"{type(cause).__name__}: {cause}"
        handles, self._handles = self._handles, {}
        for job_id, handle in handles.items():
            handle._settled(ev.Outcome(
                state="failed", error=PoolClosed,
                message=f"job {job_id} did not finish: the pool's supervisor loop "
                        f"stopped ({why})",
            ))

    # ------------------------------------------------------------------
    # Events from children
    # ------------------------------------------------------------------

    def _on_child_message(self, child_id: int, message: object) -> None:
        entry = MESSAGE_EVENTS.get(type(message))
        if entry is None:  # the decoder admits only FromChild; LogRecord never comes here
            self._post_and_feed(ev.BadMessage, child=child_id,
                       reason=f"unexpected {type(message).__name__}")
            return
        event, names = entry
        self._post_and_feed(event, child=child_id,
                            **{name: getattr(message, name) for name in names})

    def _on_bad_stream(self, child_id: int, reason: str) -> None:
        self._post_and_feed(ev.BadMessage, child=child_id, reason=reason)

    def _on_child_exit(self, child_id: int, code: int | None) -> None:
        self._children.pop(child_id, None)
        self._post_and_feed(ev.ChildExited, child=child_id, code=code)

    # ------------------------------------------------------------------
    # Commands
    # ------------------------------------------------------------------

    def _do_spawn(self, command: ev.SpawnChild) -> None:
        self._to_start.append(command.child)  # at the end of this driver step

    def _start_children(self) -> None:
        to_start, self._to_start = self._to_start, []
        for child_id in to_start:
            self._start_child(child_id)

    def _start_child(self, child_id: int) -> None:
        """Start one child's process and report Spawned, or ChildExited(code=None).

        Under fork and spawn, on the loop's thread: a fork (and exec), which
        waits for no other process. Under forkserver, on the pool's spawner
        thread: the forkserver's handshake waits for the forkserver, which may
        not answer (stopped, wedged); the loop keeps running, spawn_timeout
        fires, and the kill it brings kills the forkserver (``_do_kill``).
        """
        proc = ChildProcess(
            child_id,
            start_method=self._config.start_method,
            target=self._child_main,
            max_message_bytes=self._config.max_message_bytes,
            on_message=self._on_child_message,
            on_bad_stream=self._on_bad_stream,
            on_exit=self._on_child_exit,
        )
        try:
            if self._config.start_method != "forkserver":
                pid = proc.start()
            else:
                proc.prepare()
                start = _Start(child_id, proc)
                if self._spawner is None:
                    assert self._loop is not None
                    self._spawner = _Spawner(self._loop, self._started)
                self._starting[child_id] = start
                self._spawner.submit(start)
                return
        except Exception as exc:
            self._start_failed(child_id, exc)
            return
        self._children[child_id] = proc
        self._post(ev.Spawned, child=child_id, pid=pid)

    def _start_failed(self, child_id: int, exc: BaseException) -> None:
        log.error("could not start child %d: %s: %s", child_id, type(exc).__name__, exc,
                  extra={"child_id": child_id})
        self._post_and_feed(ev.ChildExited, child=child_id, code=None)

    def _started(self, start: _Start, error: BaseException | None) -> None:
        """On the loop: the spawner thread is done with ``start``."""
        proc = start.proc
        if self._finished:
            if error is None:
                proc.kill_unattached()  # its pool is gone: nobody would watch it
            return
        self._starting.pop(start.child_id, None)
        if error is not None:
            if start.cancelled:  # killed before or while it started: as the core asked
                log.debug("child %d not started: %s", start.child_id, error)
                self._post_and_feed(ev.ChildExited, child=start.child_id, code=None)
            else:
                self._start_failed(start.child_id, error)
            return
        pid = proc.attach()
        self._children[start.child_id] = proc
        self._post_and_feed(ev.Spawned, child=start.child_id, pid=pid)
        if start.cancelled:
            proc.kill()  # the core killed it while it started: its exit reports it

    def _do_init(self, command: ev.SendInit) -> None:
        proc = self._children.get(command.child)
        if proc is not None:
            # The child logs at the level the parent would emit its records at.
            proc.send(protocol.Init(self._init_payload, log_level=child_logs.forward_level()))

    def _do_send_job(self, command: ev.SendJob) -> None:
        proc = self._children.get(command.child)
        if proc is not None:
            proc.send(protocol.Job(command.job, self._payloads[command.job]))

    def _do_ping(self, command: ev.SendPing) -> None:
        proc = self._children.get(command.child)
        if proc is not None:
            proc.send(protocol.Ping())

    def _do_cancel(self, command: ev.SendCancel) -> None:
        proc = self._children.get(command.child)
        if proc is not None:
            proc.send(protocol.Cancel(command.job))

    def _do_stop(self, command: ev.SendStop) -> None:
        proc = self._children.get(command.child)
        if proc is not None:
            proc.send(protocol.Stop())

    def _do_kill(self, command: ev.Kill) -> None:
        if command.child in self._to_start:
            # Spawned and killed in the same driver step (the pool closed): its
            # process never existed, and the core learns so at once.
            self._to_start.remove(command.child)
            self._post(ev.ChildExited, child=command.child, code=None)
            return
        start = self._starting.get(command.child)
        if start is not None:
            start.cancelled = True  # not started yet: it will not be; started: killed then
            if start.launching and command.cause == "spawn_timeout":
                # Its handshake with the forkserver did not end within spawn_timeout:
                # the forkserver does not answer. Killing it ends the handshake.
                self._kill_forkserver(f"child {command.child} was not started within "
                                      f"spawn_timeout={self._config.spawn_timeout:g}s")
            return
        proc = self._children.get(command.child)
        if proc is not None:
            log.debug("killing child %d (pid %s): %s", command.child, proc.pid, command.reason,
                      extra={"child_id": command.child, "pid": proc.pid})
            proc.kill()

    def _kill_forkserver(self, reason: str) -> None:
        """Kill the forkserver that does not answer, and this pool's children first.

        They would die with it (``PR_SET_PDEATHSIG``), but a death by the
        kernel's signal leaves what is below them running; our own kill does
        not. Their exits reach the core as any unexpected exit does.
        """
        for proc in list(self._children.values()):
            proc.kill()
        kill_forkserver(reason)

    def _do_sample_memory(self, command: ev.SampleMemory) -> None:
        for child_id in command.children:
            proc = self._children.get(child_id)
            mb = proc.memory_mb() if proc is not None else None
            if mb is not None:
                self._post(ev.MemorySample, child=child_id, mb=mb)

    def _do_settle(self, command: ev.SettleJob) -> None:
        self._payloads.pop(command.job, None)
        handle = self._handles.pop(command.job, None)
        if handle is not None:
            handle._settled(command.outcome)

    def _do_report_availability(self, command: ev.ReportAvailability) -> None:
        self._availability_reason = command.reason
        log.info("pool %s: %s", "available" if command.available else "unavailable",
                 command.reason)

    def _do_log(self, command: ev.Log) -> None:
        proc = self._children.get(command.child) if command.child is not None else None
        log.log(
            _LOG_LEVELS.get(command.level, logging.WARNING),
            command.message,
            extra={
                "child_id": command.child,
                "job_id": command.job,
                "pid": proc.pid if proc is not None else None,
            },
        )

    def _do_transitioned(self, command: ev.Transitioned) -> None:
        # A trace record, and the core's word that the pool closed or a child
        # was abandoned: the module docstring says why the driver acts on it.
        self._transitions.append(TransitionRecord(
            command.kind, command.ident, command.source, command.event, command.dest, command.now,
        ))
        if command.kind == "pool" and command.dest == "closed":
            self._closed = True
        elif command.kind == "child" and command.dest == "abandoned":
            start = self._starting.get(command.ident)
            if start is not None and start.launching:
                # Killed (the pool closing) and still in the forkserver's handshake
                # kill_timeout later: the forkserver does not answer.
                self._kill_forkserver(f"child {command.ident} was still being started "
                                      f"kill_timeout={self._config.kill_timeout:g}s after "
                                      "its kill")
            proc = self._children.pop(command.ident, None)
            if proc is not None:
                # Not reaped after SIGKILL (uninterruptible sleep): keep watching it
                # so that a late reap still frees its descriptors.
                self._abandoned.append(proc)

    # ------------------------------------------------------------------
    # Payloads
    # ------------------------------------------------------------------

    def _pickle_job(self, fn: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> bytes:
        return pickle_job(fn, args, kwargs, self._config.max_message_bytes, self._dumps)


class _Start:
    """One forkserver child handed to the spawner thread."""

    __slots__ = ("cancelled", "child_id", "launching", "proc")

    def __init__(self, child_id: int, proc: ChildProcess) -> None:
        self.child_id = child_id
        self.proc = proc
        #: the core killed it (or the pool ended) before it was started
        self.cancelled = False
        #: the spawner thread is in its handshake with the forkserver
        self.launching = False


class _Spawner:
    """A daemon thread that starts forkserver children, one at a time, off the loop.

    A daemon thread, not the loop's executor: a start stuck in a forkserver
    that does not answer must not hold up the program's exit. Each start is
    reported back on the loop (``on_done``); a start that ends after the
    loop closed kills its process itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_done: Callable[[_Start, BaseException | None], None]) -> None:
        self._loop = loop
        self._on_done = on_done
        self._queue: queue.SimpleQueue[_Start | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="wayout-spawner", daemon=True).start()

    def submit(self, start: _Start) -> None:
        self._queue.put(start)

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (start := self._queue.get()) is not None:
            error: BaseException | None
            if start.cancelled:
                start.proc.discard()
                error = WayoutError(f"child {start.child_id} was killed before it started")
            else:
                start.launching = True
                try:
                    start.proc.launch()
                    error = None
                except BaseException as exc:  # reported on the loop
                    error = exc
                start.launching = False
            try:
                self._loop.call_soon_threadsafe(self._on_done, start, error)
            except RuntimeError:  # the loop is closed: nobody watches this process
                if error is None:
                    start.proc.kill_unattached()


def serializer(config: PoolConfig) -> Callable[[Any], bytes]:
    """The ``dumps`` of ``config.serializer``: pickle's, or cloudpickle's (an
    optional extra, ``pip install 'wayout[cloudpickle]'``). The child unpickles
    either with ``pickle.loads``: cloudpickle's output needs only cloudpickle
    importable there."""
    if config.serializer == "cloudpickle":
        try:
            import cloudpickle  # type: ignore[import-untyped, unused-ignore]
        except ImportError as exc:
            raise ConfigError(
                "PoolConfig.serializer='cloudpickle' needs cloudpickle: "
                "pip install 'wayout[cloudpickle]'") from exc

        def dumps(value: Any) -> bytes:
            data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            return data

        return dumps
    return _plain_dumps


def _plain_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def pickle_job(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               max_message_bytes: int,
               dumps: Callable[[Any], bytes] | None = None) -> bytes:
    """The payload of a job, or raise ``InvalidJob``.

    When pickling raised an ``Exception``, the ``InvalidJob`` raised is also an
    instance of that exception's type (a ``PicklingError`` stays one); any other
    ``BaseException`` a ``__reduce__`` raises (``sys.exit`` included) becomes a
    plain ``InvalidJob`` caused by it, so that nothing escapes ``submit``.
    """
    if not callable(fn):
        raise InvalidJob(f"cannot submit {fn!r}: it is not callable")
    try:
        payload = (dumps or _plain_dumps)((fn, args, kwargs))
    except BaseException as exc:
        message = (f"cannot submit {_name(fn)}: the function or its arguments cannot be "
                   f"pickled ({type(exc).__name__}: {_safe_str(exc)}); submit a module-level "
                   "function and picklable arguments")
        error = reraise_as(exc, InvalidJob)
        if error is None:
            error = InvalidJob(message)
        else:
            error.add_note(message)
        try:
            raise error from exc
        finally:
            error = None  # no cycle through this frame: the arguments go at once
    if len(payload) + protocol.ENVELOPE_BYTES > max_message_bytes:
        raise InvalidJob(
            f"cannot submit {_name(fn)}: it pickles to {len(payload)} bytes, more than "
            f"max_message_bytes={max_message_bytes}; pass less data (or a path to it) or "
            "raise the limit"
        )
    return payload


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return "str() failed"


def _pickle_initializer(config: PoolConfig, dumps: Callable[[Any], bytes]) -> bytes | None:
    if config.initializer is None:
        return None
    try:
        payload = dumps((config.initializer, config.initargs))
    except Exception as exc:
        raise ConfigError(
            f"PoolConfig.initializer={config.initializer!r} or its initargs cannot be pickled "
            f"({type(exc).__name__}: {exc}); use a module-level function and picklable initargs"
        ) from exc
    if len(payload) + protocol.ENVELOPE_BYTES > config.max_message_bytes:
        raise ConfigError(
            f"PoolConfig.initializer and initargs pickle to {len(payload)} bytes, more than "
            f"max_message_bytes={config.max_message_bytes}"
        )
    return payload


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, or None (asyncio's public spelling)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
