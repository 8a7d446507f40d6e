"""The supervisor core: every decision of a pool, as one pure object.

``SupervisorCore.handle(event)`` takes what happened (a child's message, a
process exit, a user call, time passing) and returns what to do (spawn, send,
kill, settle a job). It performs no I/O and keeps no timer: it records
deadlines as data and ``next_deadline()`` tells the runtime when to wake it.
The runtime (``runtime/``) executes the commands on real processes; the model
checker (``models/``) executes the very same object against every
interleaving the world could produce. That is why nothing here may depend on
anything but the events it is given.

Every child, job and the pool is a model of the shared ``transitions`` machine
of its lifecycle (``fsm.lifecycles``): each state change is a trigger, and
entering any non-final state arms that state's deadline. The rules that the
lifecycles cannot express (which child gets which job, how many children to
keep warm, when to back off, whether the pool is available) live in
``_reconcile``, which runs after every event so that no event can leave the
pool short of its target.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from typing import Any, cast

from fsm import codec, errors
from fsm import events as ev
from fsm.codec import ChildRecord, JobRecord, PoolRecord
from fsm.config import PoolConfig, job_timeout
from fsm.errors import InvalidTransition, WayoutError
from fsm.lifecycles import CHILD, JOB, POOL, STALLED
from fsm.machine import Lifecycle, lifecycle

# The records are fsm.codec's (declared there with their codec roles);
# import them from there: the core does not re-export them.
__all__ = ["CoreStatus", "SupervisorCore"]

_CHILD: Lifecycle = lifecycle(CHILD)
_JOB: Lifecycle = lifecycle(JOB)
_POOL: Lifecycle = lifecycle(POOL)
# By record kind (each transition looks them up: a dict, not a chain of tests):
# the machine, and each state's timeout setting as its spec declares it.
_MACHINES: dict[str, Lifecycle] = {"child": _CHILD, "job": _JOB, "pool": _POOL}
_TIMEOUTS: dict[str, Mapping[str, str | None]] = {
    "child": CHILD.timeouts, "job": JOB.timeouts, "pool": POOL.timeouts}
# The timeout settings _arm computes a deadline for in its own way (the rest
# are the setting's duration from now).
_COMPUTED = frozenset({"queue_timeout", "job_timeout", "ping_interval", "backoff_delay"})
_EDGES: dict[str, Mapping[tuple[str, str], str]] = {
    "child": CHILD.successor_map, "job": JOB.successor_map, "pool": POOL.successor_map}

# The state sets the core decides by, read from the lifecycles (never written
# again by hand): a new state or edge in fsm/lifecycles.py moves them along.
# Child states in which the supervisor may still decide to kill the process.
_KILLABLE = CHILD.sources("kill")
# Child states that are pinged, and answer with a pong.
_PINGED = CHILD.sources("pong")
# Child states a graceful stop applies to (ready and busy).
_STOPPABLE = CHILD.sources("stop")
# Child states not warm yet: waiting for hello, or for the initializer.
_WARMING = CHILD.sources("hello") | CHILD.sources("warmed")
# Child states that supply a future idle child (not yet claimed by a job): the
# warming ones and the idle ones. Policy, not implied by the lifecycle: which
# children count toward the warm target.
_SUPPLY = _WARMING | {"ready"}
# Pool states that accept new jobs: the ones a drain leaves.
_ACCEPTING = POOL.sources("drain")
# Pool states that dispatch queued jobs: the accepting ones, and draining
# (accepted jobs finish).
_DISPATCHING = _ACCEPTING | POOL.sources("drained")
# Pool states that a close moves (all but closing and closed).
_CLOSABLE = POOL.sources("close")
# Pool states that keep num_idle children warm: the ones that can back off
# from spawning when restart intensity is exceeded.
_KEEPS_WARM = POOL.sources("back_off")
# Job states whose child's end before an ack means the job never started.
_UNSTARTED = JOB.sources("requeue")
# The states whose deadline waits on a child, which a stall of the parent
# renews instead of letting it judge (fsm.lifecycles.STALLED says why).
_CHILD_RENEWED = CHILD.sources(STALLED)
_JOB_RENEWED = JOB.sources(STALLED)
_POOL_RENEWED = POOL.sources(STALLED)


@dataclass(frozen=True)
class CoreStatus:
    """A summary of the pool, for users, metrics and the checker."""

    pool_state: str
    children: Mapping[str, int]
    jobs: Mapping[str, int]
    queued: int
    available: bool
    reason: str
    warm_target: int
    restart_budget: int
    backoff_level: int
    next_deadline: float | None


@dataclass
class SupervisorCore:
    """All decisions of one pool. Feed it events, perform the commands it returns."""

    config: PoolConfig
    now: float = 0.0
    pool: PoolRecord = field(default_factory=PoolRecord)
    children: dict[int, ChildRecord] = field(default_factory=dict)
    jobs: dict[int, JobRecord] = field(default_factory=dict)
    # Queued job ids, in the order they will be dispatched (a deque: a burst
    # is dispatched from the front, a requeued job goes back to the front).
    queue: deque[int] = field(default_factory=deque)
    next_child: int = 0
    # Times of recent failures (within restart_window), for restart intensity.
    failures: list[float] = field(default_factory=list)
    # A child became ready since the last failure: spawning is known to work,
    # so a job could count on a new child (availability). False at start: a
    # pool is not available before it has warmed a child.
    spawn_proven: bool = False
    last_failure: str = ""
    backoff_level: int = 0
    heartbeat_at: float | None = None
    reported: bool | None = None
    # True (production, the model checker): state changes go through the
    # spec's compiled edge map instead of the transitions machine (same
    # lifecycle, no call overhead). False drives the transitions machine
    # itself; tests/test_core_engines.py proves both engines agree.
    compiled: bool = True
    _out: list[ev.Command] = field(default_factory=list, repr=False)
    # The deadline heap: derived from the records' deadlines, never state (not
    # in a snapshot or key; see _heap). None: not built yet, built on first use.
    _deadlines: list[_Entry] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pool.deadline is None and self.pool.state == POOL.initial:
            self._arm(self.pool)

    # ------------------------------------------------------------------
    # The one entry point
    # ------------------------------------------------------------------

    def handle(self, event: ev.Event) -> list[ev.Command]:
        """Apply ``event`` and return the commands the runtime must perform, in order."""
        last = self.now
        stalled_since = None
        if event.now - last > self.config.stall_threshold:
            # Driven late? The runtime promised to drive the core by its next
            # deadline (or sooner, with an event): time beyond that is time in
            # which the parent did not listen.
            deadline = self.next_deadline()
            if deadline is not None and event.now - max(deadline, last) > (
                    self.config.stall_threshold):
                stalled_since = max(deadline, last)
        if event.now > self.now:
            self.now = event.now
        out: list[ev.Command] = []
        self._out = out
        method = _HANDLERS.get(type(event))
        if method is None:
            raise WayoutError(f"the supervisor core does not know the event {event!r}")
        if stalled_since is not None:
            self._parent_stalled(last, stalled_since)
        method(self, event)
        self._reconcile()
        self._out = []
        return out

    def next_deadline(self) -> float | None:
        """The earliest armed deadline: the runtime wakes the core then, at the latest.

        O(1) amortised: the top of the deadline heap, once stale entries above
        it are dropped."""
        heap = self._heap()
        while heap and self._armed(heap[0]) is None:
            heappop(heap)
        best = heap[0][0] if heap else None
        hb = self.heartbeat_at
        if hb is not None and (best is None or hb < best):
            best = hb
        return best

    # ------------------------------------------------------------------
    # The deadline heap (as trio's _core.Deadlines: lazy deletion, rebuilt
    # when stale entries dominate)
    # ------------------------------------------------------------------
    #
    # Each entry is (deadline, group, ident); the group is the record's kind's
    # place in _TIE_ORDER (a child, a job, the pool). Arming a record (_arm,
    # the one place that sets a deadline) pushes an entry; nothing is ever
    # removed in place. An entry is live while its record exists and still
    # has that deadline; any other entry is stale and is dropped when it
    # reaches the top. The order (deadline, group, ident) is the order in
    # which the core always fired deadlines: earliest first, and at equal
    # times children before jobs before the pool, each by id (the order they
    # were created in: children are numbered by next_child, jobs by the
    # caller, and the runtime and the model both count up). A record re-armed
    # to the same time may have two live entries: firing the first re-arms it
    # elsewhere, and the second is then stale (if it is re-armed to the same
    # time, it is due again, and the core fired it again before the heap too).

    def _records(self) -> Iterator[ChildRecord | JobRecord | PoolRecord]:
        """Every record that may hold a deadline: kinds in _TIE_ORDER, each kind in
        the order its records were made."""
        kinds: dict[str, Iterable[ChildRecord | JobRecord | PoolRecord]] = {
            "child": self.children.values(), "job": self.jobs.values(), "pool": (self.pool,)}
        for kind in _TIE_ORDER:
            yield from kinds[kind]

    def _record(self, kind: str, ident: int) -> ChildRecord | JobRecord | PoolRecord | None:
        """The record a deadline's (kind, ident) names; None once it is gone."""
        if kind == "child":
            return self.children.get(ident)
        if kind == "job":
            return self.jobs.get(ident)
        return self.pool

    def _heap(self) -> list[_Entry]:
        heap = self._deadlines
        if heap is None:
            heap = [(obj.deadline, _GROUP[obj.kind], obj.ident) for obj in self._records()
                    if obj.deadline is not None]
            heapify(heap)
            self._deadlines = heap
        return heap

    def _armed(self, entry: _Entry) -> ChildRecord | JobRecord | PoolRecord | None:
        """The record ``entry`` stands for, if it is live; None if it is stale."""
        at, group, ident = entry
        obj = self._record(_TIE_ORDER[group], ident)
        return obj if obj is not None and obj.deadline == at else None

    def _push(self, obj: ChildRecord | JobRecord | PoolRecord) -> None:
        """Enter ``obj``'s new deadline in the heap: every deadline is set by _arm,
        which calls this (a deadline assigned elsewhere would never fire)."""
        heap = self._deadlines
        if heap is None or obj.deadline is None:
            return  # not built yet: it will be built from the records themselves
        heappush(heap, (obj.deadline, _GROUP[obj.kind], obj.ident))
        size = len(heap)
        if size > 64 and size > 2 * (len(self.children) + len(self.jobs)) + 64:
            # Stale entries dominate: rebuild from the records (O(n), after at
            # least n pushes since the last build: O(1) amortised per push).
            self._deadlines = None

    @property
    def pool_state(self) -> str:
        return self.pool.state

    @property
    def available(self) -> bool:
        return self._availability()[0]

    # ------------------------------------------------------------------
    # Events from the user
    # ------------------------------------------------------------------

    def _on_start(self, e: ev.Start) -> None:
        self.heartbeat_at = self.now + self.config.ping_interval

    def _on_submit(self, e: ev.Submit) -> None:
        if e.job in self.jobs:
            raise WayoutError(f"job {e.job} was submitted twice: job ids must be unique")
        timeout = job_timeout(self.config, e.timeout, job=e.job)
        if self.pool.state not in _ACCEPTING:
            self._settle(
                e.job, "failed", errors.PoolClosed,
                f"job {e.job} refused: the pool is {self.pool.state}; submit it to another worker",
            )
            return
        job = JobRecord(ident=e.job, timeout=timeout, submitted=self.now)
        self.jobs[e.job] = job
        self._created(job, "submit")
        self.queue.append(e.job)

    def _on_cancel(self, e: ev.Cancel) -> None:
        job = self.jobs.get(e.job)
        if job is None or job.state == "cancelling":
            return  # already final or already being cancelled: cancel is idempotent
        if job.state == "queued":
            self.queue.remove(job.ident)
            self._fire(job, "cancel")
            self._settle(job.ident, "cancelled", errors.JobCancelled,
                         f"job {job.ident} was cancelled before it started")
            del self.jobs[job.ident]
            return
        self._begin_cancel(job, "cancel")

    def _on_drain(self, e: ev.Drain) -> None:
        if self.pool.state in _ACCEPTING:
            self._fire(self.pool, "drain")

    def _on_close(self, e: ev.Close) -> None:
        if self.pool.state not in _CLOSABLE:
            return
        self._fire(self.pool, "close")
        self._enter_closing()

    # ------------------------------------------------------------------
    # Events from process handling
    # ------------------------------------------------------------------

    def _on_spawned(self, e: ev.Spawned) -> None:
        child = self.children.get(e.child)
        if child is None:
            self._log("warning", f"process {e.pid} reported for unknown child {e.child}", e.child)
            return
        child.pid = e.pid

    def _on_child_exited(self, e: ev.ChildExited) -> None:
        child = self.children.get(e.child)
        if child is None:
            return  # an abandoned child reaped late: its slot was released already
        was = child.state
        how = "could not be started" if e.code is None else f"exited with code {e.code}"
        if not child.settled:
            child.reason = f"{how} while {was}"
            self._record_failure(child)
        elif not child.reason:
            child.reason = how
        self._fire(child, "exit")
        self._release_job(child)
        del self.children[child.ident]

    def _on_memory_sample(self, e: ev.MemorySample) -> None:
        child = self.children.get(e.child)
        if child is None or child.state not in _KILLABLE:
            return
        cfg = self.config
        if cfg.memory_limit_mb is not None and e.mb > cfg.memory_limit_mb:
            self._kill(child, f"memory {e.mb:.0f} MB over memory_limit_mb={cfg.memory_limit_mb:g}",
                       failure=True, cause="memory")
            return
        if cfg.memory_warn_mb is not None:
            if e.mb > cfg.memory_warn_mb and not child.mem_warned:
                child.mem_warned = True
                self._log("warning", f"child {child.ident} uses {e.mb:.0f} MB, over "
                          f"memory_warn_mb={cfg.memory_warn_mb:g}", child.ident, child.job)
            elif e.mb <= cfg.memory_warn_mb:
                child.mem_warned = False

    def due(self, at: float) -> list[ev.DeadlineKey]:
        """The records whose deadline is the earliest and at or before ``at``, in the
        core's own order of a tie: what ``DeadlineReached.order`` may name."""
        found: list[ev.DeadlineKey] = []
        first: float | None = None
        for obj in self._records():
            d = obj.deadline
            if d is None or d > at or (first is not None and d > first):
                continue
            if first is None or d < first:
                first, found = d, []
            found.append((obj.kind, obj.ident))
        return found

    def _named_first(self, order: tuple[ev.DeadlineKey, ...],
                     due: ChildRecord | JobRecord | PoolRecord,
                     heap: list[_Entry]) -> ChildRecord | JobRecord | PoolRecord:
        """Of the records due with ``due`` (just popped), the first that ``order``
        names; ``due`` goes back to the heap to wait its turn (else it is returned)."""
        at = cast(float, due.deadline)  # a popped, live entry: its record's deadline
        for kind, ident in order:
            obj = self._record(kind, ident)
            if obj is not None and obj.deadline == at:
                if obj is not due:
                    heappush(heap, (at, _GROUP[due.kind], due.ident))
                return obj
        return due

    def _on_deadline(self, e: ev.DeadlineReached) -> None:
        # Fire every deadline that has passed, earliest first. Children go before
        # jobs and jobs before the pool at equal times, so that a pool closing
        # exactly when its last child is abandoned sees that child gone (the
        # heap's order, see _heap). Firing k deadlines costs O(k log n).
        # At most e.most of them: the rest stay due for the next event.
        now = self.now
        budget = e.most
        while budget is None or budget > 0:
            heap = self._heap()  # a push may have dropped it for a rebuild
            if not heap or heap[0][0] > now:
                break
            due = self._armed(heappop(heap))
            if due is not None:
                if e.order:
                    due = self._named_first(e.order, due, heap)
                self._timeout(due)
                if budget is not None:
                    budget -= 1
        if self.heartbeat_at is not None and self.heartbeat_at <= self.now:
            self._heartbeat()

    # ------------------------------------------------------------------
    # Events from a child
    # ------------------------------------------------------------------

    def _child_for(self, child_id: int, event: str, allowed: Iterable[str]) -> ChildRecord | None:
        """The child if ``event`` is legal for it now; None if the message is stale.

        A message from a child we already decided to stop or kill is stale (it
        was in flight); one that breaks the protocol in a live state kills the
        child, because a child that lies about its state cannot be trusted.
        """
        child = self.children.get(child_id)
        if child is None or child.state not in _KILLABLE:
            return None
        if child.state in allowed:
            return child
        if child.state == "stopping":
            return None
        self._kill(child, f"protocol violation: {event} while {child.state}", failure=True,
                   cause="protocol")
        return None

    def _on_hello(self, e: ev.Hello) -> None:
        child = self._child_for(e.child, "hello", ("spawned",))
        if child is not None:
            self._fire(child, "hello")
            self._out.append(ev.SendInit(child.ident))

    def _on_ready(self, e: ev.Ready) -> None:
        child = self._child_for(e.child, "ready", ("warming",))
        if child is not None:
            self._fire(child, "warmed")
            # Spawning works (again): back-off starts over.
            self.spawn_proven = True
            self.backoff_level = 0

    def _on_init_error(self, e: ev.InitError) -> None:
        child = self._child_for(e.child, "init error", ("warming",))
        if child is not None:
            self._kill(child, f"initializer failed: {e.reason}", failure=True,
                       cause="init_error", trigger="init_error")

    def _on_pong(self, e: ev.Pong) -> None:
        child = self.children.get(e.child)
        if child is not None and child.state in _PINGED:
            self._fire(child, "pong")  # re-arms the ping_timeout deadline

    def _on_bad_message(self, e: ev.BadMessage) -> None:
        child = self.children.get(e.child)
        if child is not None and child.state in _KILLABLE:
            self._kill(child, f"bad message: {e.reason}", failure=True, cause="protocol")

    def _job_for(self, e: ev.JobAck | ev.JobDone | ev.JobRaised | ev.CancelAck,
                 what: str, allowed: Iterable[str]) -> JobRecord | None:
        """The job a child reports on, if the report is legal; None if it is stale."""
        child = self.children.get(e.child)
        if child is None:
            return None
        job = self.jobs.get(e.job)
        if job is not None and job.child == child.ident:
            if job.state in allowed:
                # Accepted even from a child we are killing: the report is the truth.
                return job
            if job.state == "cancelling":
                return None  # a report that crossed our cancel
            problem = f"{what} for job {job.ident} while the job is {job.state}"
        elif child.state == "stopping":
            return None  # the job was settled while this report was in flight
        else:
            problem = f"{what} for job {e.job}, which it does not hold"
        if child.state in _KILLABLE:
            self._kill(child, f"protocol violation: {problem}", failure=True, cause="protocol")
        return None

    def _on_job_ack(self, e: ev.JobAck) -> None:
        # Also while unacked: an ack read before the stream ends is the truth,
        # the job started (and fails with ChildDied when its killed child ends).
        job = self._job_for(e, "ack", ("dispatched", "unacked"))
        if job is None:
            return
        if job.state == "unacked":
            child = self.children[e.child]
            child.reason = (f"{child.reason}; its ack came after that: job {job.ident} had "
                            "started, so it is not run again")
        self._fire(job, "ack")

    def _on_job_done(self, e: ev.JobDone) -> None:
        job = self._job_for(e, "result", ("running", "cancelling"))
        if job is None:
            return
        self._fire(job, "finish")
        self._settle(job.ident, "done", None, "", value=e.result)
        self._finish_job(job)

    def _on_job_raised(self, e: ev.JobRaised) -> None:
        job = self._job_for(e, "error", ("running", "cancelling"))
        if job is None:
            return
        self._fire(job, "error")
        self._out.append(ev.SettleJob(job.ident, ev.Outcome(
            state="failed", error=errors.JobFailed,
            message=f"job {job.ident} raised {e.error_type}: {e.message}",
            remote_type=e.error_type, remote_message=e.message, remote_traceback=e.traceback,
            remote_exception=e.exception,
        )))
        self._finish_job(job)

    def _on_cancel_ack(self, e: ev.CancelAck) -> None:
        job = self._job_for(e, "cancel ack", ("cancelling",))
        if job is not None:
            self._fire(job, "cancelled")
            self._settle_cancelled(job, "")
            self._detach(job)

    # ------------------------------------------------------------------
    # Deadlines
    # ------------------------------------------------------------------

    def _timeout(self, obj: ChildRecord | JobRecord | PoolRecord) -> None:
        if isinstance(obj, ChildRecord):
            self._child_timeout(obj)
        elif isinstance(obj, JobRecord):
            self._job_timeout(obj)
        else:
            self._pool_timeout()

    def _child_timeout(self, child: ChildRecord) -> None:
        state = child.state
        setting = CHILD.state(state).timeout or ""
        if state == "failed":
            self._fire(child, "timeout")  # -> abandoned
            self._log("error", f"child {child.ident} (pid {child.pid}) was not reaped "
                      f"{self.config.kill_timeout:g}s after SIGKILL; abandoned, its slot "
                      f"released ({child.reason})", child.ident, child.job)
            self._release_job(child)
            del self.children[child.ident]
            return
        what = CHILD.state(state).missed
        # The setting that bounds a killable state names the kill's cause
        # (tests/test_lifecycles.py checks that each one is a KillCause).
        self._kill(child, f"{what} within {setting}={self.config.duration(setting):g}s",
                   failure=True, cause=cast(ev.KillCause, setting), trigger="timeout")

    def _job_timeout(self, job: JobRecord) -> None:
        state = job.state
        if state == "queued":
            self.queue.remove(job.ident)
            self._fire(job, "timeout")
            why = self._availability()[1]
            self._settle(job.ident, "failed", errors.NoCapacity,
                         f"job {job.ident} waited queue_timeout={self.config.queue_timeout:g}s "
                         f"and no child could take it ({why}); raise max_children or "
                         "queue_timeout, or find why children fail")
            del self.jobs[job.ident]
        elif state == "dispatched":
            # -> unacked: the job stays with its child until the child's stream
            # ends (an ack may still be in it), so that it never runs twice.
            self._fire(job, "timeout")
            child = self.children.get(job.child) if job.child is not None else None
            if child is not None and child.state in _KILLABLE:
                self._kill(child, f"sent no ack for job {job.ident} within "
                           f"ack_timeout={self.config.ack_timeout:g}s", failure=True,
                           cause="ack_timeout")
        elif state == "unacked":
            # Its child outlived its own kill_timeout (that fires first and
            # requeues): a process not reaped after SIGKILL runs no more user
            # code, so the job provably never started.
            self._fire(job, "timeout")  # -> queued
            self._requeue(job)
        elif state == "running":
            self._begin_cancel(job, "timeout")
        else:  # cancelling: the child did not give the job up in time
            self._fire(job, "timeout")
            child = self.children.get(job.child) if job.child is not None else None
            self._settle_cancelled(job, "; its child was killed")
            self._detach(job)
            if child is not None and child.state in _KILLABLE:
                self._kill(child, f"did not cancel job {job.ident} within "
                           f"close_timeout={self.config.close_timeout:g}s", failure=False,
                           cause="cancel")

    def _pool_timeout(self) -> None:
        state = self.pool.state
        self._fire(self.pool, "timeout")
        if state == "starting":
            self._log("warning", f"pool started without {self.config.num_idle} ready children "
                      f"within start_timeout={self.config.start_timeout:g}s")
        elif state == "backing_off":
            self.failures.clear()
        elif state == "draining":
            self._log("warning", f"drain_timeout={self.config.drain_timeout:g}s passed with "
                      f"{len(self.jobs)} jobs unfinished; closing")
            self._enter_closing()
        elif state == "closing":
            for child in self.children.values():  # unreachable by construction; say so if not
                self._log("error", f"child {child.ident} still {child.state} at shutdown",
                          child.ident)

    def _parent_stalled(self, last: float, late_since: float) -> None:
        """The core was driven long after its next deadline: the parent stalled.

        Between ``late_since`` (its next deadline, or its last drive if later)
        and now nobody read the children's messages, so a deadline that waits
        on a child and passed meanwhile proves nothing about the child: its
        hello, ack, pong or exit may sit unread in a socket. Each such
        deadline (the states that take ``STALLED``) is renewed with its full
        timeout from now, whether it passed or not, and the ready and busy
        children are pinged again (a re-probe): a child is blamed only for
        silence while the parent listens. The user's bounds on wall time
        (queue_timeout, job_timeout, drain_timeout) and the pool's own timers
        are not renewed: they fire as usual, after this.
        """
        renewed = 0
        for child in self.children.values():
            if child.state in _CHILD_RENEWED:
                self._fire(child, STALLED)
                renewed += 1
        for job in self.jobs.values():
            if job.state in _JOB_RENEWED:
                self._fire(job, STALLED)
        if self.pool.state in _POOL_RENEWED:
            self._fire(self.pool, STALLED)
        pinged = sum(1 for c in self.children.values() if c.state in _PINGED)
        self._log("warning", (
            f"the supervisor stalled: it was not driven for {self.now - last:.1f}s, "
            f"{self.now - late_since:.1f}s past its next deadline "
            f"(stall_grace={self.config.stall_threshold:g}s; its event loop was blocked or its "
            f"process stopped); renewing the deadlines of {renewed} children and pinging the "
            f"{pinged} ready or busy again, instead of blaming them"))
        # The re-probe: the heartbeat pings every ready and busy child, now. With
        # no heartbeat (before Start, or once closing) no child is ready or busy.
        if self.heartbeat_at is not None:
            self._heartbeat()

    def _heartbeat(self) -> None:
        cfg = self.config
        sample: list[int] = []
        for child in self.children.values():
            if child.state in _PINGED:
                self._out.append(ev.SendPing(child.ident))
            if child.pid is not None and child.state in _KILLABLE:
                sample.append(child.ident)
        if sample and (cfg.memory_limit_mb is not None or cfg.memory_warn_mb is not None):
            self._out.append(ev.SampleMemory(tuple(sample)))
        self.heartbeat_at = self.now + cfg.ping_interval

    # ------------------------------------------------------------------
    # Reconciliation: runs after every event
    # ------------------------------------------------------------------

    def _reconcile(self) -> None:
        pool = self.pool
        cfg = self.config
        # Restart intensity (Erlang/OTP): too many failures in the window -> back off.
        horizon = self.now - cfg.restart_window
        if self.failures and self.failures[0] <= horizon:
            self.failures = [t for t in self.failures if t > horizon]
        if len(self.failures) > cfg.max_restarts and pool.state in _KEEPS_WARM:
            self.backoff_level = min(self.backoff_level + 1, self.config.max_backoff_level)
            self._fire(pool, "back_off")
            self._log("warning", f"{len(self.failures)} child failures within "
                      f"restart_window={cfg.restart_window:g}s (max_restarts={cfg.max_restarts}); "
                      f"backing off {self._backoff_delay():g}s; last: {self.last_failure}")

        # Dispatch: the oldest queued job to a ready child.
        if self.queue and pool.state in _DISPATCHING:
            for child in self.children.values():
                if child.state == "ready":
                    job = self.jobs[self.queue.popleft()]
                    self._fire(job, "dispatch")
                    job.child = child.ident
                    self._fire(child, "dispatch")
                    child.job = job.ident
                    self._out.append(ev.SendJob(child.ident, job.ident))
                    if not self.queue:
                        break

        # Spawn: keep num_idle idle children on top of queued demand, in
        # parallel with children still warming, within max_children.
        if pool.state in _KEEPS_WARM:
            target = cfg.num_idle + len(self.queue)
        elif pool.state == "draining":
            target = len(self.queue)
        else:
            target = 0
        # Past the restart intensity no state spawns (a draining pool cannot back
        # off, but it must not respawn in a hot loop either): spawning resumes
        # when old failures leave the window, or after the back-off.
        # (Counted in plain loops: a generator costs more than the count, and
        # this runs after every event.)
        if target and len(self.failures) <= cfg.max_restarts:
            supply = 0
            for c in self.children.values():
                if c.state in _SUPPLY:
                    supply += 1
            room = cfg.max_children - len(self.children)
            for _ in range(min(room, target - supply)):
                self._spawn()

        # Pool progress.
        if pool.state == "starting":
            ready = 0
            for c in self.children.values():
                if c.state == "ready":
                    ready += 1
            if ready >= cfg.num_idle:
                self._fire(pool, "warm")
        elif pool.state == "draining" and not self.jobs:
            self._fire(pool, "drained")
            self._enter_closing()
        if pool.state == "closing" and not self.children:
            self._fire(pool, "closed")

        available, reason = self._availability()
        if available != self.reported:
            self.reported = available
            self._out.append(ev.ReportAvailability(available, reason))

    def _availability(self) -> tuple[bool, str]:
        """Would a job submitted now be dispatched without waiting on a failing spawn?"""
        state = self.pool.state
        if state == "backing_off":
            return False, (f"backing off after {len(self.failures)} failures within "
                           f"restart_window; last: {self.last_failure}")
        if state not in _KEEPS_WARM:
            return False, f"the pool is {state}"
        # (Plain loops: this runs after every event, and a generator costs more
        # than the count.)
        children = self.children.values()
        for c in children:
            if c.state == "ready":
                return True, "a ready child is idle"
        if not self.spawn_proven:
            why = f"the last child failed: {self.last_failure}" if self.last_failure else (
                "no child has become ready yet")
            return False, f"no ready child, and {why}"
        warming = 0
        for c in children:
            if c.state in _WARMING:
                warming += 1
        room = self.config.max_children - len(self.children)
        if warming + room > len(self.queue):
            return True, "a child is warming or can be spawned"
        return False, (f"all {len(self.children)} children are busy or starting and "
                       f"{len(self.queue)} jobs are queued")

    # ------------------------------------------------------------------
    # Helpers that change state (each through a trigger)
    # ------------------------------------------------------------------

    def _fire(self, obj: ChildRecord | JobRecord | PoolRecord, event: str) -> None:
        source = obj.state
        kind = obj.kind
        if self.compiled:
            # Lifecycle.fire_compiled, inline (every transition takes this path):
            # the spec's own edge map, looked up once.
            dest = _EDGES[kind].get((source, event))
            if dest is None:
                raise InvalidTransition(kind, obj.ident, source, event)
            obj.state = dest
        else:
            _MACHINES[kind].fire(obj, event)
        self._arm(obj)
        self._out.append(ev.Transitioned(kind, obj.ident, source, event, obj.state, self.now))

    def _created(self, obj: ChildRecord | JobRecord, event: str) -> None:
        self._arm(obj)
        self._out.append(ev.Transitioned(obj.kind, obj.ident, "", event, obj.state, self.now))

    def _arm(self, obj: ChildRecord | JobRecord | PoolRecord) -> None:
        """Arm the deadline of the state ``obj`` just entered (none for final states)."""
        setting = _TIMEOUTS[obj.kind][obj.state]
        if setting is None:
            obj.deadline = None
            return  # no deadline: nothing for the heap
        if setting not in _COMPUTED:
            # The common case first (most states): the setting's own duration.
            duration = self.config.durations.get(setting)
            if duration is None:
                duration = self.config.duration(setting)  # raises: no such duration setting
            obj.deadline = self.now + duration
        elif setting == "queue_timeout" and isinstance(obj, JobRecord):
            # A requeued job keeps the budget it got at submission: the caller's
            # bound on waiting does not restart because a child died.
            obj.deadline = obj.submitted + self.config.queue_timeout
        elif setting == "job_timeout" and isinstance(obj, JobRecord):
            obj.deadline = self.now + obj.timeout
        elif setting == "ping_interval" and self.heartbeat_at is not None and (
            self.heartbeat_at > self.now
        ):
            # The running pool's reconcile tick is aligned with the heartbeat,
            # so that a quiet pool wakes once per ping_interval, not twice.
            obj.deadline = self.heartbeat_at
        elif setting == "backoff_delay":
            obj.deadline = self.now + self._backoff_delay()
        else:
            duration = self.config.durations.get(setting)
            if duration is None:
                duration = self.config.duration(setting)  # raises: no such duration setting
            obj.deadline = self.now + duration
        self._push(obj)

    def _backoff_delay(self) -> float:
        cfg = self.config
        level = max(self.backoff_level, 1)
        return float(min(cfg.backoff_initial * 2 ** (level - 1), cfg.backoff_max))

    def _spawn(self) -> None:
        child = ChildRecord(ident=self.next_child)
        self.next_child += 1
        self.children[child.ident] = child
        self._created(child, "spawn")
        self._out.append(ev.SpawnChild(child.ident))

    def _kill(self, child: ChildRecord, reason: str, *, failure: bool, cause: ev.KillCause,
              trigger: str = "kill") -> None:
        """SIGKILL ``child``; ``failure`` counts it toward restart intensity.

        ``cause`` is one of ``events.KILL_CAUSES``; ``trigger`` is the lifecycle
        event that moves it to ``failed`` (a kill we decide, a missed deadline,
        an initializer that failed)."""
        if not child.settled:
            child.reason = reason
            if failure:
                self._record_failure(child)
            child.settled = True
        else:
            child.reason = f"{child.reason}; then {reason}"
        self._fire(child, trigger)
        self._out.append(ev.Kill(child.ident, child.reason, cause=cause))

    def _stop(self, child: ChildRecord, reason: str) -> None:
        """Ask ``child`` to exit; its end is ours, not a failure."""
        child.reason = reason
        child.settled = True
        self._fire(child, "stop")

    def _record_failure(self, child: ChildRecord) -> None:
        child.settled = True
        self.failures.append(self.now)
        # Restart intensity only asks "more than max_restarts in the window":
        # the newest max_restarts + 1 times answer it, so no more are kept
        # (and a world that keeps failing cannot grow the state without bound).
        if len(self.failures) > self.config.max_restarts + 1:
            del self.failures[0]
        self.spawn_proven = False
        self.last_failure = f"child {child.ident}: {child.reason}"
        self._log("warning", f"child {child.ident} (pid {child.pid}) failed: {child.reason}",
                  child.ident, child.job)

    def _begin_cancel(self, job: JobRecord, cause: str) -> None:
        job.cause = cause
        self._fire(job, "cancel" if cause == "cancel" else "timeout")
        child = self.children.get(job.child) if job.child is not None else None
        if child is not None and child.state == "busy":
            self._stop(child, f"cancelling job {job.ident}")
            self._out.append(ev.SendCancel(child.ident, job.ident))

    def _finish_job(self, job: JobRecord) -> None:
        """The child reported the job's end: free the child, recycle it if it is due."""
        child = self.children[job.child] if job.child is not None else None
        self._detach(job)
        if child is None or child.state != "busy":
            return
        self._fire(child, "finish")
        child.jobs_done += 1
        limit = self.config.max_jobs_per_child
        if limit is not None and child.jobs_done >= limit:
            self._stop(child, f"recycled after {child.jobs_done} jobs")
            self._out.append(ev.SendStop(child.ident))

    def _detach(self, job: JobRecord) -> None:
        """Forget a job that just became final."""
        if job.child is not None:
            child = self.children.get(job.child)
            if child is not None and child.job == job.ident:
                child.job = None
        del self.jobs[job.ident]

    def _requeue(self, job: JobRecord) -> None:
        """Put a job that never started back at the head of the queue."""
        if job.child is not None:
            child = self.children.get(job.child)
            if child is not None and child.job == job.ident:
                child.job = None
            job.child = None
        self.queue.appendleft(job.ident)
        if job.deadline is not None and job.deadline <= self.now:
            # Its queue budget counts from submission and is spent: it fails
            # now. Left queued, a child could take it before the next tick,
            # and a job whose children keep failing would never end.
            self._job_timeout(job)

    def _release_job(self, child: ChildRecord) -> None:
        """``child`` is gone: settle or requeue the job it held."""
        if child.job is None:
            return
        job = self.jobs.get(child.job)
        child.job = None
        if job is None:
            return
        if job.state in _UNSTARTED:
            # No ack arrived before the end of the stream: the job never started.
            self._fire(job, "requeue")
            self._requeue(job)
            return
        self._fire(job, "child_died")
        if job.state == "cancelled":
            self._settle_cancelled(job, "; its child ended")
        else:
            self._settle(job.ident, "failed", errors.ChildDied,
                         f"job {job.ident}: child {child.ident} (pid {child.pid}) "
                         f"{child.reason}")
        del self.jobs[job.ident]

    def _enter_closing(self) -> None:
        """Settle every job, stop idle and busy children, kill starting ones."""
        self.heartbeat_at = None
        self.queue.clear()
        # A busy child is told to cancel its job (it then exits), not merely to
        # stop: the job is settled now, so its work is of no use to anyone.
        busy_jobs = {c.ident: c.job for c in self.children.values() if c.state == "busy"}
        for job in list(self.jobs.values()):
            self._fire(job, "abort")
            if job.state == "cancelled":
                self._settle_cancelled(job, "; the pool closed")
            else:
                self._settle(job.ident, "failed", errors.PoolClosed,
                             f"job {job.ident} did not finish: the pool closed")
            self._detach(job)
        for child in list(self.children.values()):
            if child.state in _STOPPABLE:
                self._stop(child, "pool closing")
                busy_job = busy_jobs.get(child.ident)
                self._out.append(ev.SendStop(child.ident) if busy_job is None
                                 else ev.SendCancel(child.ident, busy_job))
            elif child.state in _WARMING:
                self._kill(child, "pool closing", failure=False, cause="closing")

    # ------------------------------------------------------------------
    # Output helpers
    # ------------------------------------------------------------------

    def _settle(self, job: int, state: str, error: type[errors.JobError] | None,
                message: str, value: object = None) -> None:
        self._out.append(ev.SettleJob(job, ev.Outcome(state=state, value=value, error=error,
                                                      message=message)))

    def _settle_cancelled(self, job: JobRecord, detail: str) -> None:
        if job.cause == "timeout":
            self._settle(job.ident, "cancelled", errors.JobTimeout,
                         f"job {job.ident} ran past its timeout of {job.timeout:g}s and was "
                         f"cancelled{detail}")
        else:
            self._settle(job.ident, "cancelled", errors.JobCancelled,
                         f"job {job.ident} was cancelled{detail}")

    def _log(self, level: ev.LogLevel, message: str, child: int | None = None,
             job: int | None = None) -> None:
        self._out.append(ev.Log(level, message, child, job))

    # ------------------------------------------------------------------
    # Introspection, snapshots
    # ------------------------------------------------------------------

    def status(self) -> CoreStatus:
        children: dict[str, int] = dict.fromkeys(CHILD.state_names, 0)
        for c in self.children.values():
            children[c.state] += 1
        jobs: dict[str, int] = dict.fromkeys(JOB.state_names, 0)
        for j in self.jobs.values():
            jobs[j.state] += 1
        available, reason = self._availability()
        return CoreStatus(
            pool_state=self.pool.state,
            children=children,
            jobs=jobs,
            queued=len(self.queue),
            available=available,
            reason=reason,
            warm_target=self.config.num_idle,
            restart_budget=max(0, self.config.max_restarts - len(self.failures)),
            backoff_level=self.backoff_level,
            next_deadline=self.next_deadline(),
        )

    # The state as data: fsm.codec writes it, from the records' declared fields.

    def snapshot(self, canonical: bool = False) -> Hashable:
        """A hashable value that, with the config, determines all future behaviour
        (``fsm.codec.snapshot``: times relative to ``now``; ``canonical``
        renames children so that states equal up to child naming are equal)."""
        return codec.snapshot(self, canonical)

    @classmethod
    def restore(
        cls, config: PoolConfig, snapshot: Hashable, now: float = 0.0, *, compiled: bool = True
    ) -> SupervisorCore:
        """The core that ``snapshot`` describes, at time ``now``."""
        return codec.restore(cls, config, snapshot, now, compiled)

    def clone(self) -> SupervisorCore:
        """An independent copy (cheaper than a snapshot round trip)."""
        return codec.clone(self)


#: A deadline heap entry: (deadline, group, ident); see SupervisorCore._heap.
_Entry = tuple[float, int, int]
#: The order in which deadlines due at the same instant fire: children before
#: jobs before the pool (a pool closing exactly when its last child is
#: abandoned sees that child gone).
_TIE_ORDER = ("child", "job", "pool")
_GROUP: dict[str, int] = {kind: group for group, kind in enumerate(_TIE_ORDER)}

_HANDLERS: dict[type[ev.Event], Callable[[SupervisorCore, Any], None]] = {
    ev.Start: SupervisorCore._on_start,
    ev.Submit: SupervisorCore._on_submit,
    ev.Cancel: SupervisorCore._on_cancel,
    ev.Drain: SupervisorCore._on_drain,
    ev.Close: SupervisorCore._on_close,
    ev.Spawned: SupervisorCore._on_spawned,
    ev.ChildExited: SupervisorCore._on_child_exited,
    ev.MemorySample: SupervisorCore._on_memory_sample,
    ev.DeadlineReached: SupervisorCore._on_deadline,
    ev.Hello: SupervisorCore._on_hello,
    ev.Ready: SupervisorCore._on_ready,
    ev.InitError: SupervisorCore._on_init_error,
    ev.Pong: SupervisorCore._on_pong,
    ev.BadMessage: SupervisorCore._on_bad_message,
    ev.JobAck: SupervisorCore._on_job_ack,
    ev.JobDone: SupervisorCore._on_job_done,
    ev.JobRaised: SupervisorCore._on_job_raised,
    ev.CancelAck: SupervisorCore._on_cancel_ack,
}
