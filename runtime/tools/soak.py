"""The soak engine: many jobs through a real pool while faults are injected.

``run_soak(SoakSettings(jobs=N, fault_rate=R, seed=S))`` submits N jobs,
``concurrency`` at a time. Each job, with probability R, carries a fault
chosen at random (seeded, so a run can be repeated):

* inside the job: ``raise`` (an exception), ``exit`` (``os._exit``),
  ``segfault`` (``faulthandler._sigsegv``), ``hang`` (sleeps past its own
  short timeout), ``garbage`` (writes bytes that are no message on the
  control socket, then hangs);
* from outside, when the job is submitted: ``sigkill`` (SIGKILL to a random
  live child) and ``sigstop`` (SIGSTOP to a random ready or busy child: a
  stalled process, which only the heartbeat can find).

Every job must end with the outcome its fault calls for (a faultless job
returns its value; a job whose child was signalled from outside may end
``ChildDied`` instead), within its bound (``job_bound``). The report counts

* jobs by outcome, and the **wrong** ones (an outcome its fault does not
  explain), the **wedged** ones (settled later than their bound) and the
  **lost** ones (never settled, even after the pool closed);
* faults injected by kind, and the **time to recover** from each fault that
  costs a child: from the fault (the job's ack, its timeout for a hang, the
  signal for outside faults) to the moment the faulty child is gone and the
  pool has ``num_idle`` ready children again;
* after the pool closed: **leaked** processes (descendants still alive) and
  file descriptors; and whether the whole trace conforms to the lifecycle
  specs (``models.conformance``).

``SoakReport.ok`` is false on any wrong, wedged or lost job, leak, trace
violation or fault the pool did not recover from.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import random
import resource
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.config import job_bound as config_job_bound
from fsm.errors import ChildDied, JobFailed, JobTimeout, WayoutError
from models import conformance
from runtime import child
from runtime.tools import leaks
from runtime.tools.bench import stats

#: Faults carried by the job itself.
JOB_FAULTS = ("raise", "exit", "segfault", "hang", "garbage")
#: Faults done to a random child from outside when the job is submitted.
OUTSIDE_FAULTS = ("sigkill", "sigstop")
FAULT_KINDS = (*JOB_FAULTS, *OUTSIDE_FAULTS)

#: Exit code of the ``exit`` fault.
EXIT_CODE = 7
#: The timeout of a job that hangs: its fault is to run past it.
HANG_TIMEOUT = 0.3
#: Slack on each job's bound, for the event loop's own latency on a loaded machine.
BOUND_SLACK = 3.0

_LIVE = ("spawned", "warming", "ready", "busy", "stopping")
_STALLABLE = ("ready", "busy")


@dataclass(frozen=True)
class SoakSettings:
    jobs: int = 1000
    fault_rate: float = 0.1
    seed: int = 0
    start_method: str = "forkserver"
    concurrency: int = 8
    num_idle: int = 2
    #: None: high enough that restart intensity never backs the soak off (the
    #: soak measures recovery from faults, not the back-off policy).
    max_restarts: int | None = None
    faults: tuple[str, ...] = FAULT_KINDS

    def __post_init__(self) -> None:
        if self.jobs < 0:
            raise WayoutError(f"soak: jobs must be >= 0, got {self.jobs}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise WayoutError(f"soak: fault rate must be within [0, 1], got {self.fault_rate}")
        if self.concurrency < 1:
            raise WayoutError(f"soak: concurrency must be >= 1, got {self.concurrency}")
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown or not self.faults:
            raise WayoutError(f"soak: faults must be among {', '.join(FAULT_KINDS)}, "
                              f"got {', '.join(sorted(unknown)) or 'none'}")

    def pool_config(self) -> PoolConfig:
        """The pool under soak: real defaults, except timeouts short enough to soak fast."""
        return PoolConfig(
            num_idle=self.num_idle,
            # Room for every job in flight plus the warm target, so that a job
            # never waits for capacity unless faults ate it.
            max_children=self.concurrency + self.num_idle,
            start_method=self.start_method,
            spawn_timeout=15.0,
            initialize_timeout=10.0,
            # A stalled (SIGSTOPped) child is found by its missing pongs.
            ping_interval=0.25,
            ping_timeout=2.0,
            close_timeout=0.5,
            kill_timeout=5.0,
            queue_timeout=30.0,
            ack_timeout=5.0,
            job_timeout=10.0,
            start_timeout=30.0,
            drain_timeout=30.0,
            max_restarts=self.max_restarts if self.max_restarts is not None
            else max(100, 2 * self.jobs),
            restart_window=10.0,
            backoff_initial=0.1,
            backoff_max=1.0,
        )


def job_bound(config: PoolConfig, timeout: float | None) -> float:
    """The core's bound on a job (``fsm.config.job_bound``), plus the event loop's slack."""
    return config_job_bound(config, timeout) + BOUND_SLACK


# --- what runs in the children ------------------------------------------------------

_control: socket.socket | None = None


def soak_child_main(sock: socket.socket, child_id: int, max_message_bytes: int,
                    inherited_fds: tuple[int, ...] = ()) -> None:
    """The child's entry point: the real one, after keeping the control socket at
    hand for the ``garbage`` fault."""
    global _control
    _control = sock
    child.main(sock, child_id, max_message_bytes, inherited_fds)


class SoakFault(Exception):
    """What the ``raise`` fault raises."""


def work(i: int) -> int:
    return 7 * i + 3


def fail(i: int) -> None:
    raise SoakFault(f"soak job {i} raised on purpose")


def exit_now() -> None:
    os._exit(EXIT_CODE)


def segfault() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file per crash
    faulthandler.disable()
    faulthandler._sigsegv()  # type: ignore[attr-defined]


def hang() -> None:
    while True:
        time.sleep(3600)


def garbage() -> None:
    assert _control is not None, "soak_child_main must be the child's entry point"
    _control.sendall(b"\x00\x00\x00\x03abc")
    hang()


_JOB_FOR: dict[str | None, Callable[..., Any]] = {
    None: work, "sigkill": work, "sigstop": work,
    "raise": fail, "exit": exit_now, "segfault": segfault, "hang": hang, "garbage": garbage,
}


# --- the report -----------------------------------------------------------------------


@dataclass
class SoakReport:
    settings: SoakSettings
    elapsed: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    #: fault kind -> faults that cost a child (an injected fault may not: e.g. a hang
    #: job whose child was SIGKILLed from outside before its timeout)
    struck: Counter[str] = field(default_factory=Counter)
    #: fault kind -> seconds from each fault to the pool back at num_idle ready
    recovery: dict[str, list[float]] = field(default_factory=dict)
    #: faults that cost a child after which the pool never got back to num_idle ready
    unrecovered: Counter[str] = field(default_factory=Counter)
    #: descriptions of jobs whose outcome their fault does not explain
    wrong: list[str] = field(default_factory=list)
    wedged: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    leaked_processes: list[str] = field(default_factory=list)
    leaked_fds: list[str] = field(default_factory=list)
    trace_records: int = 0
    trace_violations: list[str] = field(default_factory=list)
    children_started: int = 0
    kills: int = 0

    @property
    def ok(self) -> bool:
        return not (self.wrong or self.wedged or self.lost or self.leaked_processes
                    or self.leaked_fds or self.trace_violations or self.unrecovered)

    def problems(self) -> list[str]:
        out = []
        if self.wrong:
            out.append(f"{len(self.wrong)} jobs ended with an outcome their fault does not "
                       f"explain, e.g. {self.wrong[0]}")
        if self.wedged:
            out.append(f"{len(self.wedged)} jobs settled past their bound: {self.wedged[:10]}")
        if self.lost:
            out.append(f"{len(self.lost)} jobs never settled: {self.lost[:10]}")
        if self.leaked_processes:
            out.append(f"processes outlived the pool: {self.leaked_processes}")
        if self.leaked_fds:
            out.append(f"file descriptors leaked: {self.leaked_fds}")
        if self.trace_violations:
            out.append(f"{len(self.trace_violations)} trace violations, e.g. "
                       f"{self.trace_violations[0]}")
        if self.unrecovered:
            out.append(f"the pool did not get back to num_idle ready after: "
                       f"{dict(self.unrecovered)}")
        return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of unsorted ``values``, as the bench computes it.

    NaN if there are none."""
    return stats.percentile(sorted(values), q) if values else float("nan")


# --- the engine -------------------------------------------------------------------------


@dataclass
class _Fault:
    kind: str
    at: float
    child: int | None = None


class _Tracker:
    """Listens to the pool: child states, which job went where, and recovery times."""

    def __init__(self, num_idle: int, report: SoakReport) -> None:
        self.num_idle = num_idle
        self.report = report
        self.records: list[ev.Transitioned] = []
        self.child_state: dict[int, str] = {}
        self.child_end: dict[int, float] = {}
        self.job_child: dict[int, int] = {}
        self.job_acked: dict[int, float] = {}
        self.job_timed_out: dict[int, float] = {}
        self.ready = 0
        # Faults whose child is not gone yet, or gone while the pool was short.
        self.pending: list[_Fault] = []
        # job id -> the fault it carries, for faults detected through the job's own records
        self.job_faults: dict[int, str] = {}

    def __call__(self, command: ev.Command) -> None:
        if isinstance(command, ev.Transitioned):
            self.records.append(command)
            if command.kind == "child":
                self._on_child(command)
            elif command.kind == "job":
                self._on_job(command)
        elif isinstance(command, ev.SendJob):
            self.job_child[command.job] = command.child
        elif isinstance(command, ev.Kill):
            self.report.kills += 1

    def _on_child(self, t: ev.Transitioned) -> None:
        if t.source == "ready":
            self.ready -= 1
        if t.dest == "ready":
            self.ready += 1
        if t.source == "":
            self.report.children_started += 1
        self.child_state[t.ident] = t.dest
        if t.dest in ("killed", "abandoned"):
            self.child_end[t.ident] = t.now
        self._settle_recoveries(t.now)

    def _on_job(self, t: ev.Transitioned) -> None:
        kind = self.job_faults.get(t.ident)
        if kind is None:
            return
        if t.event == "ack" and kind in ("exit", "segfault", "garbage"):
            self.job_acked[t.ident] = t.now
            self.add_fault(_Fault(kind, t.now, self.job_child.get(t.ident)))
        elif t.event == "timeout" and t.source == "running" and kind == "hang":
            self.add_fault(_Fault(kind, t.now, self.job_child.get(t.ident)))

    def add_fault(self, fault: _Fault) -> None:
        self.report.struck[fault.kind] += 1
        self.pending.append(fault)
        self._settle_recoveries(fault.at)

    def _settle_recoveries(self, now: float) -> None:
        if self.ready < self.num_idle or not self.pending:
            return
        still = []
        for fault in self.pending:
            end = self.child_end.get(fault.child) if fault.child is not None else None
            if end is None:
                still.append(fault)
            else:
                self.report.recovery.setdefault(fault.kind, []).append(max(now, end) - fault.at)
        self.pending = still

    def live_children(self, states: tuple[str, ...]) -> list[int]:
        return [c for c, s in self.child_state.items() if s in states]


def _classify(exc: BaseException | None) -> str:
    if exc is None:
        return "value"
    return type(exc).__name__


async def run_soak(settings: SoakSettings,
                   progress: Callable[[int, int], None] | None = None) -> SoakReport:
    """Run the soak on the running event loop; return its report."""
    from runtime.pool import Pool  # the engine's import stays light for `wayout --help`

    report = SoakReport(settings)
    config = settings.pool_config()
    rng = random.Random(settings.seed)
    # multiprocessing's helpers live as long as this process: the baseline
    # starts them first, so that they are not taken for leaks.
    baseline = leaks.Baseline()

    tracker = _Tracker(settings.num_idle, report)
    pool = Pool(config, child_main=soak_child_main, max_transitions=1000)
    pool.subscribe(tracker)
    slots = asyncio.Semaphore(settings.concurrency)
    stragglers: dict[int, asyncio.Future[Any]] = {}
    done = 0
    signalled: set[int] = set()  # children we signalled from outside
    started = time.monotonic()

    def signal_random_child(kind: str) -> bool:
        states = _LIVE if kind == "sigkill" else _STALLABLE
        candidates = sorted(set(tracker.live_children(states)) - signalled)
        pids = pool.status().pids
        candidates = [c for c in candidates if c in pids]
        if not candidates:
            return False
        victim = rng.choice(candidates)
        try:
            os.kill(pids[victim], signal.SIGKILL if kind == "sigkill" else signal.SIGSTOP)
        except ProcessLookupError:
            return False
        signalled.add(victim)
        tracker.add_fault(_Fault(kind, time.monotonic(), victim))
        return True

    def explained(i: int, job_id: int, kind: str | None, exc: BaseException | None,
                  value: Any) -> bool:
        child_id = tracker.job_child.get(job_id)
        if child_id in signalled and isinstance(exc, ChildDied | JobTimeout):
            return True  # its child was killed or stalled from outside
        if kind in (None, "sigkill", "sigstop"):
            return exc is None and value == work(i)
        if kind == "raise":
            return isinstance(exc, JobFailed) and exc.remote_type == "runtime.tools.soak.SoakFault"
        if kind == "exit":
            return isinstance(exc, ChildDied) and f"exited with code {EXIT_CODE}" in str(exc)
        if kind == "segfault":
            return isinstance(exc, ChildDied) and "exited with code -11" in str(exc)
        if kind == "garbage":
            return isinstance(exc, ChildDied) and "bad message" in str(exc)
        if kind == "hang":
            return isinstance(exc, JobTimeout)
        return False

    async def outcome(handle: Any) -> tuple[BaseException | None, Any]:
        try:
            return None, await handle
        except Exception as exc:  # a typed error, or a bug the report must show
            return exc, None

    async def watch(i: int, kind: str | None, handle: Any, timeout: float | None) -> None:
        """Wait for job ``i`` within its bound and judge its outcome."""
        nonlocal done
        submitted = time.monotonic()
        task = asyncio.ensure_future(outcome(handle))
        try:
            finished, _ = await asyncio.wait({task}, timeout=job_bound(config, timeout))
            if not finished:
                report.wedged.append(handle.id)
                stragglers[handle.id] = task
                return
            exc, value = task.result()
            report.outcomes[_classify(exc)] += 1
            if not explained(i, handle.id, kind, exc, value):
                report.wrong.append(f"job {i} (fault {kind or 'none'}) ended "
                                    f"{_classify(exc)}: {exc if exc is not None else value!r} "
                                    f"after {time.monotonic() - submitted:.2f}s")
        finally:
            slots.release()
            done += 1
            if progress is not None:
                progress(done, settings.jobs)

    watchers: list[asyncio.Task[None]] = []
    async with pool:
        for i in range(settings.jobs):
            await slots.acquire()
            kind = rng.choice(settings.faults) if rng.random() < settings.fault_rate else None
            if kind in OUTSIDE_FAULTS:
                if not signal_random_child(kind):
                    kind = None  # no child to signal right now: a plain job
            if kind is not None:
                report.faults[kind] += 1
            timeout = HANG_TIMEOUT if kind == "hang" else None
            args: tuple[Any, ...] = (i,) if _JOB_FOR[kind] in (work, fail) else ()
            handle = pool.submit(_JOB_FOR[kind], *args, timeout=timeout)
            if kind in JOB_FAULTS:
                tracker.job_faults[handle.id] = kind
            watchers.append(asyncio.ensure_future(watch(i, kind, handle, timeout)))
        await asyncio.gather(*watchers)
        # Every fault must heal: the pool back at its warm target.
        try:
            await pool.wait_for(lambda st: st.children["ready"] >= settings.num_idle
                                and not tracker.pending, timeout=60.0)
        except TimeoutError:
            pass
        for fault in tracker.pending:
            report.unrecovered[fault.kind] += 1
    # Jobs that outlived their bound must have settled by now: closing settles all.
    if stragglers:
        await asyncio.wait(stragglers.values(), timeout=1.0)
        report.lost.extend(i for i, task in stragglers.items() if not task.done())
    report.elapsed = time.monotonic() - started
    left = baseline.leaks()
    report.leaked_processes = sorted(left.processes)
    report.leaked_fds = list(left.fds)
    report.trace_records = len(tracker.records)
    # After close the core holds the closed pool and nothing else: every child
    # and job must have reached a final state in its history.
    final = pool.status()
    checked = conformance.check(tracker.records, {("pool", 0): final.state})
    report.trace_violations = [str(v) for v in checked.violations]
    held = {f"{state} {kind}": n for kind, counts in (("children", final.children),
                                                      ("jobs", final.jobs))
            for state, n in counts.items() if n}
    if held:
        report.trace_violations.append(f"after close the pool still holds {held}")
    return report
