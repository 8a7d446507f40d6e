"""The fault matrix: every fault at every stage of a child's life, on real processes.

Stages: the initializer; the job's unpickling in the child; the job's run; the
result's pickling in the child; the result's unpickling in the parent; the
job's ack; a pong (while a job runs); the graceful stop. Faults: an exception,
``os._exit``, SIGKILL (the process kills itself), a segfault
(``faulthandler._sigsegv``), a hang, garbage bytes on the control socket, and
an oversized frame header. Each case asserts

* the typed outcome: the probe job's error class and message (or its value,
  when the fault provably cannot have touched it), and the path the faulty
  child took through its lifecycle with the supervisor's reason for it;
* recovery: the pool is back to ``num_idle`` ready children, and runs a job;
* nothing leaked: no descendant process and no file descriptor outlives the
  pool (``run_checked``); and the trace conforms to the lifecycle specs (the
  autouse fixture of ``tests/conftest.py``).

The whole matrix runs under fork in ``make test``; forkserver and spawn are
``slow`` (``pytest -m slow``), with a ``ci_slice`` of them in ``make test``.

Combinations that are NOT generated, and why:

* ``result_unpickle`` x ``exit``, ``sigkill``, ``segfault``, ``hang``: the
  result is unpickled in the caller's own process, in the task that awaits
  the job. Ending that process, or blocking its event loop, ends or blocks
  the supervisor itself; no supervisor recovers from its own death (the
  death of the parent is issue 6's orphan test: the children die with it).
* ``result_unpickle`` x ``garbage``, ``oversized``: unpickling a result that
  arrived intact involves no control message, so there is nothing to corrupt.

One combination means something more specific than the others:

* ``result_pickle`` x ``oversized`` is a result larger than
  ``max_message_bytes`` (the child refuses to send it and reports
  ``wayout.ResultTooLarge``): a raw oversized frame header written while the
  result is pickled would be the same fault as ``job_run`` x ``oversized``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fault_funcs as ff
import pytest
from reliability_support import (
    CommandLog,
    cfg,
    live_descendants,
    pool_test,
    transitions_of,
    within,
)

from runtime import Pool
from runtime.errors import ChildDied, JobFailed, JobTimeout

pytestmark = pytest.mark.timeout(60)

Step = tuple[str, str, str]

#: The child's state when a fault at each stage strikes.
STATE_AT = {"initializer": "warming", "job_unpickle": "busy", "job_run": "busy",
            "result_pickle": "busy", "result_unpickle": "busy", "ack": "busy",
            "pong": "busy", "stop": "stopping"}
#: How the supervisor words a process's own death, per fault.
DEATH = {"exit": f"exited with code {ff.EXIT_CODE}", "sigkill": "exited with code -9",
         "segfault": "exited with code -11"}
#: ... and a broken stream.
BAD_STREAM = {"garbage": "bad message: undecodable message",
              "oversized": r"bad message: frame of \d+ bytes exceeds max_message_bytes"}
#: The fault module's exception, as the child names it.
REMOTE_FAULT = "fault_funcs.InjectedFault"
#: The timeout of a probe job that hangs.
HANG_JOB_TIMEOUT = 0.5
#: Stages whose fault fires in the job the probe submits.
JOB_STAGES = ("job_unpickle", "job_run", "result_pickle", "pong")


@dataclass(frozen=True)
class Expect:
    """What a (stage, fault) case must show."""

    #: must appear, in this order, among the faulty child's transitions
    child_steps: tuple[Step, ...]
    #: a regex the supervisor's kill reasons and log lines about that child must match
    note: str | None = None
    #: the probe job's error (None: it returns its value)
    error: type[BaseException] | None = None
    message: str = ""
    remote_type: str = ""
    #: must appear, in this order, among the probe job's transitions
    job_steps: tuple[Step, ...] = ()


def expect(stage: str, fault: str) -> Expect | None:
    """The expected outcome of ``fault`` at ``stage``; None if the case is not meaningful."""
    at = STATE_AT[stage]
    if stage == "result_unpickle":
        if fault != "exception":
            return None
        return Expect((("busy", "finish", "ready"),), error=JobFailed,
                      message="cannot be unpickled in the parent", remote_type="InjectedFault")
    requeued: tuple[Step, ...] = (("dispatched", "requeue", "queued"),)

    if fault in DEATH:
        note = None if at == "stopping" else f"{DEATH[fault]} while {at}"
        if stage in JOB_STAGES:
            return Expect(((at, "exit", "killed"),), note, ChildDied,
                          f"{DEATH[fault]} while busy")
        return Expect(((at, "exit", "killed"),), note,
                      job_steps=requeued if stage == "ack" else ())

    if fault in BAD_STREAM:
        if stage == "result_pickle" and fault == "oversized":
            return Expect((("busy", "finish", "ready"),), error=JobFailed,
                          message=r"returned \d+ bytes once pickled, more than max_message_bytes",
                          remote_type="wayout.ResultTooLarge")
        steps: tuple[Step, ...] = ((at, "kill", "failed"), ("failed", "exit", "killed"))
        if stage in JOB_STAGES:
            return Expect(steps, BAD_STREAM[fault], ChildDied, BAD_STREAM[fault])
        return Expect(steps, BAD_STREAM[fault], job_steps=requeued if stage == "ack" else ())

    no_pong = "answered no ping within ping_timeout"
    if fault == "exception":
        return {
            "initializer": Expect(
                (("warming", "init_error", "failed"), ("failed", "exit", "killed")),
                rf"initializer failed: {REMOTE_FAULT}: injected fault at initializer"),
            "job_unpickle": Expect((("busy", "finish", "ready"),), error=JobFailed,
                                   message="injected fault at job_unpickle",
                                   remote_type=REMOTE_FAULT),
            "job_run": Expect((("busy", "finish", "ready"),), error=JobFailed,
                              message="injected fault at job_run", remote_type=REMOTE_FAULT),
            "result_pickle": Expect(
                (("busy", "finish", "ready"),), error=JobFailed,
                message=r"returned a FaultOnPickle that cannot be pickled "
                        r"\(injected fault at result_pickle\)",
                remote_type=REMOTE_FAULT),
            # The ack's send raising ends the child's main thread: the process exits 1.
            "ack": Expect((("busy", "exit", "killed"),), "exited with code 1 while busy",
                          job_steps=requeued),
            # The pong's send raising ends the control thread: no more pongs.
            "pong": Expect((("busy", "timeout", "failed"),), no_pong, ChildDied, no_pong),
            "stop": Expect((("stopping", "exit", "killed"),)),
        }[stage]

    assert fault == "hang", fault
    timed_out = "ran past its timeout"
    return {
        "initializer": Expect(
            (("warming", "timeout", "failed"), ("failed", "exit", "killed")),
            "did not finish its initializer within initialize_timeout"),
        # Hanging in user code (or in unpickling): the cancel interrupts it.
        "job_unpickle": Expect(
            (("busy", "stop", "stopping"), ("stopping", "exit", "killed")), None, JobTimeout,
            timed_out, job_steps=(("running", "timeout", "cancelling"),
                                  ("cancelling", "cancelled", "cancelled"))),
        "job_run": Expect(
            (("busy", "stop", "stopping"), ("stopping", "exit", "killed")), None, JobTimeout,
            timed_out, job_steps=(("running", "timeout", "cancelling"),
                                  ("cancelling", "cancelled", "cancelled"))),
        # Hanging after user code returned: nothing interrupts it. The child's
        # stop and the job's cancel share close_timeout: whichever deadline the
        # core fires first names the kill.
        "result_pickle": Expect(
            (("busy", "stop", "stopping"), ("failed", "exit", "killed")),
            r"did not (stop|cancel job \d+) within close_timeout", JobTimeout,
            r"ran past its timeout of [\d.]+s and was cancelled; its child (was killed|ended)",
            job_steps=(("running", "timeout", "cancelling"),)),
        "ack": Expect((("busy", "kill", "failed"), ("failed", "exit", "killed")),
                      r"sent no ack for job \d+ within ack_timeout",
                      # Requeued only when the killed child's stream ends with no ack.
                      job_steps=(("dispatched", "timeout", "unacked"),
                                 ("unacked", "requeue", "queued"))),
        "pong": Expect((("busy", "timeout", "failed"),), no_pong, ChildDied, no_pong),
        "stop": Expect((("stopping", "timeout", "failed"), ("failed", "exit", "killed")),
                       "did not stop within close_timeout"),
    }[stage]


def cases(method: str, marks: list[Any]) -> list[Any]:
    out = []
    for stage in ff.STAGES:
        for fault in ff.FAULTS:
            if expect(stage, fault) is not None:
                case_marks = list(marks)
                if (method, stage, fault) in CI_SLICE:
                    case_marks.append(pytest.mark.ci_slice)
                out.append(pytest.param(method, stage, fault, marks=case_marks,
                                        id=f"{method}-{stage}-{fault}"))
    return out


#: The forkserver and spawn cases that `make test` runs too: one per stage.
CI_SLICE = {
    ("spawn", "initializer", "hang"),
    ("forkserver", "job_unpickle", "segfault"),
    ("spawn", "job_run", "sigkill"),
    ("forkserver", "result_pickle", "hang"),
    ("spawn", "result_unpickle", "exception"),
    ("forkserver", "ack", "garbage"),
    ("spawn", "pong", "exception"),
    ("forkserver", "stop", "oversized"),
}

ALL_CASES = [
    *cases("fork", []),
    *cases("forkserver", [pytest.mark.slow]),
    *cases("spawn", [pytest.mark.slow]),
]


def contains_in_order(seen: list[Step], wanted: tuple[Step, ...]) -> bool:
    it = iter(seen)
    return all(step in it for step in wanted)


def config_for(method: str, stage: str, fault: str, token_dir: str) -> Any:
    settings: dict[str, Any] = {
        "num_idle": 1,
        "max_children": 2,
        "initialize_timeout": 1.0 if method == "fork" else 2.0,
        "ack_timeout": 1.0,
        "close_timeout": 0.5,
        "kill_timeout": 2.0,
    }
    if stage == "initializer":
        settings.update(initializer=ff.init_fault, initargs=(fault, token_dir))
    if stage == "pong":
        settings.update(ping_interval=0.1, ping_timeout=1.0)
    if stage == "stop":
        settings.update(max_jobs_per_child=1)
    return cfg(method, **settings)


def probe_job(pool: Pool, stage: str, fault: str, token_dir: str) -> Any:
    """Submit the job whose outcome the case checks (it carries job-stage faults)."""
    timeout = HANG_JOB_TIMEOUT if fault == "hang" else None
    if stage == "job_unpickle":
        return pool.submit(ff.echo, ff.FaultOnUnpickle(fault, token_dir), timeout=timeout)
    if stage == "job_run":
        return pool.submit(ff.run_fault, fault, token_dir, timeout=timeout)
    if stage == "result_pickle":
        if fault == "oversized":
            return pool.submit(ff.return_oversized, token_dir)
        return pool.submit(ff.return_fault_on_pickle, fault, token_dir, timeout=timeout)
    if stage == "result_unpickle":
        return pool.submit(ff.return_raises_on_unpickle)
    if stage == "pong":
        return pool.submit(ff.sleep, 30, timeout=20.0)
    return pool.submit(ff.add, 1, 2)


@pytest.mark.parametrize(("method", "stage", "fault"), ALL_CASES)
@pool_test
async def test_fault(method: str, stage: str, fault: str, tmp_path: Path) -> None:
    want = expect(stage, fault)
    assert want is not None
    token_dir = str(tmp_path)
    child_main = ff.entry(stage, fault, token_dir) if stage in ("ack", "pong", "stop") \
        else ff.entry()
    pool = Pool(config_for(method, stage, fault, token_dir), child_main=child_main)
    log = CommandLog(pool)
    async with pool:
        job = probe_job(pool, stage, fault, token_dir)
        if want.error is None:
            assert await within(20, job) == 3
        else:
            with pytest.raises(want.error) as caught:
                await within(20, job)
            assert re.search(want.message, str(caught.value)), str(caught.value)
            if want.remote_type:
                assert isinstance(caught.value, JobFailed)
                assert caught.value.remote_type == want.remote_type

        # Which child the fault hit: the first the probe job was sent to (the
        # initializer's fault hits the first child, before any job).
        faulty = 0 if stage == "initializer" else log.sent_to[job.id][0]
        try:
            await within(20, pool.wait_for(
                lambda st: contains_in_order(transitions_of(pool, "child", faulty),
                                             want.child_steps)))
        except TimeoutError:
            raise AssertionError(
                f"child {faulty} went {transitions_of(pool, 'child', faulty)}, "
                f"not through {want.child_steps}; supervisor notes: {log.notes(faulty)}"
            ) from None
        # The fault fired, in that child (the parent's own unpickling leaves no token).
        token = ff.read_token(token_dir)
        if stage == "result_unpickle":
            assert token is None
        else:
            assert token is not None, "the fault never fired"
            assert token[0] == faulty, f"the fault fired in child {token[0]}, not {faulty}"
        if want.note is not None:
            assert re.search(want.note, log.notes(faulty)), log.notes(faulty)
        if want.job_steps:
            assert contains_in_order(transitions_of(pool, "job", job.id), want.job_steps), \
                transitions_of(pool, "job", job.id)

        # Recovery: back to the warm target, and serving.
        num_idle = pool.config.num_idle
        await within(20, pool.wait_for(
            lambda st: st.state == "running" and st.children["ready"] >= num_idle))
        assert await within(20, pool.run(ff.add, 2, 2)) == 4
    assert not live_descendants()
