"""A hypothesis state machine against the REAL runtime: real processes, real signals.

Rules submit jobs (normal, raising, crashing, hanging past their timeout,
slow), SIGKILL / SIGSTOP / SIGCONT a random child, cancel a random job, let
time pass, drain and close. After every step:

* the status counts equal what the recorded transitions say, and the trace
  conforms to the lifecycle specs (``models.conformance``);
* no job is older than its bound without an outcome;
* no process exists below us that the pool does not know.

At teardown the pool is closed (if the rules did not), every job must have
an outcome that what happened to it explains, and no process or descriptor
may outlive the pool. Each machine instance runs its own event loop: a rule
runs its step with ``loop.run_until_complete``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import fault_funcs as ff
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from reliability_support import cfg, live_descendants, open_fds, start_helpers

from fsm import events as ev
from fsm.errors import (
    ChildDied,
    JobCancelled,
    JobFailed,
    JobTimeout,
    NoCapacity,
    PoolClosed,
)
from fsm.lifecycles import CHILD, JOB
from models import conformance
from runtime import Pool
from runtime.tools import soak

KINDS = ("normal", "raising", "crashing", "hanging", "slow")
HANG_TIMEOUT = 0.3
SLOW_SECONDS = 1.0
#: Slack on a job's bound for the loop's latency on a loaded 2-core machine.
SLACK = 3.0


@dataclass
class Job:
    kind: str
    handle: Any
    index: int
    submitted: float
    bound: float
    # What happened while it was alive, which may explain another outcome.
    cancelled: bool = False
    child_signalled: bool = False
    pool_closing: bool = False
    notes: list[str] = field(default_factory=list)


def natural(kind: str, index: int, exc: BaseException | None, value: Any) -> bool:
    if kind in ("normal",):
        return exc is None and value == index + 1
    if kind == "slow":
        return exc is None and value == SLOW_SECONDS
    if kind == "raising":
        return isinstance(exc, JobFailed) and exc.remote_type == "fault_funcs.InjectedFault"
    if kind == "crashing":
        return isinstance(exc, ChildDied) and f"exited with code {ff.EXIT_CODE}" in str(exc)
    if kind == "hanging":
        return isinstance(exc, JobTimeout)
    raise AssertionError(kind)


class PoolMachine(RuleBasedStateMachine):
    method = "fork"

    def __init__(self) -> None:
        super().__init__()
        start_helpers()
        self.fds_before = open_fds()
        self.procs_before = {p.pid for p in live_descendants()}
        self.loop = asyncio.new_event_loop()
        self.config = cfg(
            self.method, num_idle=2, max_children=4, ping_interval=0.1, ping_timeout=1.0,
            close_timeout=0.3, kill_timeout=2.0, queue_timeout=5.0, ack_timeout=1.0,
            job_timeout=5.0, drain_timeout=2.0, max_restarts=10_000,
            initialize_timeout=5.0,
        )
        self.pool = Pool(self.config, child_main=ff.entry())
        self.records: list[ev.Transitioned] = []
        self.pool.subscribe(self._record)
        self.jobs: list[Job] = []
        self.closed = False
        self.loop.run_until_complete(asyncio.wait_for(self.pool.start(), 30))

    def _record(self, command: ev.Command) -> None:
        if isinstance(command, ev.Transitioned):
            self.records.append(command)

    def _bound(self, timeout: float | None) -> float:
        return soak.job_bound(self.config, timeout)  # the soak's bound, slack included

    def _run(self, awaitable: Any, seconds: float = 30.0) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, seconds))

    def _alive(self) -> list[Job]:
        return [j for j in self.jobs if not j.handle.done()]

    # --- rules ------------------------------------------------------------------------

    @rule(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4),
          until_started=st.booleans())
    def submit(self, kinds: list[str], until_started: bool) -> None:
        """Submit jobs; with ``until_started``, wait until a child took the last one."""
        for kind in kinds:
            handle = self._submit(kind)
        if until_started and handle is not None:
            # Bounded by the job's own deadlines: queue_timeout at worst.
            self._run(self.pool.wait_for(
                lambda st: handle.state not in ("submitted", "queued")),
                self.config.queue_timeout + SLACK)

    def _submit(self, kind: str) -> Any:
        index = len(self.jobs)
        timeout = HANG_TIMEOUT if kind == "hanging" else None
        fn, args = {
            "normal": (ff.add, (index, 1)),
            "raising": (ff.run_fault, ("exception", None)),
            "crashing": (ff.run_fault, ("exit", None)),
            "hanging": (ff.sleep, (60,)),
            "slow": (ff.sleep, (SLOW_SECONDS,)),
        }[kind]
        if self.closed:
            with pytest.raises(PoolClosed):
                self.pool.submit(fn, *args, timeout=timeout)
            return None
        handle = self.pool.submit(fn, *args, timeout=timeout)
        self.jobs.append(Job(kind, handle, index, time.monotonic(), self._bound(timeout)))
        return handle

    @rule(signum=st.sampled_from([signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT]),
          busy_one=st.booleans(), pick=st.integers(0, 7))
    def signal_a_child(self, signum: signal.Signals, busy_one: bool, pick: int) -> None:
        """Signal a random child (with ``busy_one``, one that runs a job, if any does)."""
        pids = self.pool.status().pids
        candidates = sorted(pids)
        if busy_one:
            busy = [c for c in candidates if self._child_state(c) == "busy"]
            candidates = busy or candidates
        if not candidates:
            return
        child = candidates[pick % len(candidates)]
        try:
            os.kill(pids[child], signum)
        except ProcessLookupError:
            return
        if signum != signal.SIGCONT:
            for job in self._alive():
                job.child_signalled = True
                job.notes.append(f"{signum.name} child {child}")

    def _child_state(self, child: int) -> str:
        for record in reversed(self.records):
            if record.kind == "child" and record.ident == child:
                return record.dest
        return ""

    @rule(pick=st.integers(0, 50))
    def cancel_a_job(self, pick: int) -> None:
        alive = self._alive()
        if not alive:
            return
        job = alive[pick % len(alive)]
        job.cancelled = True
        job.handle.cancel()

    @rule(seconds=st.sampled_from([0.01, 0.05, 0.3]))
    def let_time_pass(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    # Ending the pool ends what an example can explore: only once some jobs ran.
    @precondition(lambda self: not self.closed and len(self.jobs) >= 6)
    @rule()
    def drain(self) -> None:
        self._closing()
        c = self.config
        self._run(self.pool.drain(), c.drain_timeout + c.shutdown_timeout + SLACK)

    @precondition(lambda self: not self.closed and len(self.jobs) >= 6)
    @rule()
    def close(self) -> None:
        self._closing()
        self._run(self.pool.close(), self.config.shutdown_timeout + SLACK)

    def _closing(self) -> None:
        self.closed = True
        for job in self._alive():
            job.pool_closing = True

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def counts_agree_with_the_trace(self) -> None:
        core = self.pool._core
        assert core is not None
        report = conformance.check(self.records, conformance.live_states(core))
        assert report.ok, str(report)
        status = self.pool.status()
        for spec, counts in ((CHILD, status.children), (JOB, status.jobs)):
            for state in spec.state_names:
                if spec.is_final(state):
                    continue
                assert counts[state] == report.counts.get((spec.name, state), 0), \
                    (spec.name, state, counts, report.counts)

    @invariant()
    def every_job_settles_within_its_bound(self) -> None:
        now = time.monotonic()
        for job in self._alive():
            assert now - job.submitted <= job.bound, \
                f"job {job.index} ({job.kind}) has no outcome after {now - job.submitted:.1f}s"

    @invariant()
    def no_process_the_pool_does_not_know(self) -> None:
        known = set(self.pool.status().pids.values())
        strangers = [p for p in live_descendants()
                     if p.pid not in known and p.pid not in self.procs_before]
        assert not strangers, f"processes the pool does not know: {strangers}"

    # --- teardown ---------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.closed:
                self._closing()
                self._run(self.pool.close(), self.config.shutdown_timeout + SLACK)
            # Closing settles every job: none may still be without an outcome.
            unsettled = [f"{j.index} ({j.kind})" for j in self._alive()]
            assert not unsettled, f"jobs never settled, although the pool closed: {unsettled}"
            for job in self.jobs:
                exc, value = self._run(self._outcome(job.handle), 5.0)
                assert self._explained(job, exc, value), (
                    f"job {job.index} ({job.kind}) ended {exc!r} / {value!r}; "
                    f"it lived through: {job.notes}, cancelled={job.cancelled}, "
                    f"closing={job.pool_closing}")
            core = self.pool._core
            assert core is not None and core.pool_state == "closed"
            report = conformance.check(self.records, conformance.live_states(core))
            assert report.ok, str(report)
        finally:
            if not self.closed:
                self.loop.run_until_complete(self.pool.close())
            self.loop.close()
        leaked = [p for p in live_descendants() if p.pid not in self.procs_before]
        assert not leaked, f"processes outlived the pool: {leaked}"
        after = open_fds()
        leaked_fds = {fd: t for fd, t in after.items() if self.fds_before.get(fd) != t}
        assert not leaked_fds, f"file descriptors leaked: {leaked_fds}"

    @staticmethod
    async def _outcome(handle: Any) -> tuple[BaseException | None, Any]:
        try:
            return None, await handle
        except Exception as exc:
            return exc, None

    @staticmethod
    def _explained(job: Job, exc: BaseException | None, value: Any) -> bool:
        if natural(job.kind, job.index, exc, value):
            return True
        if job.cancelled and isinstance(exc, JobCancelled):
            return True
        # A killed child takes its job with it; a stopped one misses its pongs (or
        # the job its timeout), and a stopped child still warming eats capacity.
        if job.child_signalled and isinstance(exc, ChildDied | JobTimeout | NoCapacity):
            return True
        if job.pool_closing and isinstance(exc, PoolClosed | JobCancelled | JobTimeout):
            return True
        return False


class ForkserverPoolMachine(PoolMachine):
    method = "forkserver"


def _settings(examples: int, steps: int) -> settings:
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow], print_blob=True)


@pytest.mark.timeout(180)
def test_the_real_pool_under_random_faults() -> None:
    run_state_machine_as_test(PoolMachine, settings=_settings(examples=12, steps=20))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("machine", [PoolMachine, ForkserverPoolMachine],
                         ids=["fork", "forkserver"])
def test_the_real_pool_under_many_random_faults(machine: type[PoolMachine]) -> None:
    run_state_machine_as_test(machine, settings=_settings(examples=40, steps=40))
