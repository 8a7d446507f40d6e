"""models.conformance: it accepts the traces the core really produces, and it
flags every kind of forged or damaged trace (so that the autouse check that
runs after every runtime test can fail)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fsm import events as ev
from fsm.config import PoolConfig
from fsm.core import SupervisorCore
from models import conformance
from runtime.pool import TransitionRecord

T = ev.Transitioned


def child_life(ident: int = 0, t: float = 0.0) -> list[T]:
    return [
        T("child", ident, "", "spawn", "spawned", t),
        T("child", ident, "spawned", "hello", "warming", t),
        T("child", ident, "warming", "warmed", "ready", t),
    ]


def violations(records: list[T], **kwargs: object) -> list[str]:
    return [v.message for v in conformance.check(records, **kwargs).violations]  # type: ignore[arg-type]


def test_a_legal_trace_conforms() -> None:
    trace = [
        *child_life(),
        T("pool", 0, "starting", "warm", "running", 0.0),
        T("job", 7, "", "submit", "queued", 1.0),
        T("job", 7, "queued", "dispatch", "dispatched", 1.0),
        T("child", 0, "ready", "dispatch", "busy", 1.0),
        T("job", 7, "dispatched", "ack", "running", 1.1),
        T("child", 0, "busy", "pong", "busy", 1.2),
        T("job", 7, "running", "finish", "done", 1.3),
        T("child", 0, "busy", "finish", "ready", 1.3),
    ]
    report = conformance.check(trace, live={("pool", 0): "running", ("child", 0): "ready"})
    assert report.ok, str(report)
    assert report.states[("job", 7)] == "done"
    assert report.counts[("child", "ready")] == 1
    assert "conforms" in str(report)


@pytest.mark.parametrize(("forged", "complaint"), [
    (T("child", 0, "ready", "hello", "warming", 1.0), "'hello' is not allowed in 'ready'"),
    (T("child", 0, "ready", "dispatch", "ready", 1.0), "must lead to 'busy', not 'ready'"),
    (T("child", 0, "busy", "finish", "ready", 1.0), "leaves 'busy' but its history left it in"),
    (T("child", 0, "", "spawn", "spawned", 1.0), "created again"),
    (T("child", 1, "", "spawn", "ready", 1.0), "not the initial state 'spawned'"),
    (T("child", 2, "ready", "dispatch", "busy", 1.0), "before it was created"),
    (T("child", 0, "ready", "pong", "ready", -1.0), "time went backwards"),
    (T("robot", 0, "", "make", "made", 1.0), "no lifecycle named 'robot'"),
    (T("pool", 0, "", "start", "starting", 1.0), "exists from the start"),
    (T("child", 0, "ready", "dispatch", "nowhere", 1.0), "must lead to 'busy'"),
    (T("child", 0, "limbo", "exit", "killed", 1.0), "unknown state 'limbo'"),
])
def test_each_forged_record_is_flagged(forged: T, complaint: str) -> None:
    found = violations([*child_life(), forged])
    assert any(complaint in message for message in found), found


def test_nothing_happens_after_a_final_state() -> None:
    trace = [*child_life(), T("child", 0, "ready", "exit", "killed", 1.0),
             T("child", 0, "killed", "exit", "killed", 2.0)]
    assert any("'killed' is final" in m for m in violations(trace))


def test_a_bounded_history_may_start_mid_life_only_when_said_so() -> None:
    tail = [T("child", 3, "ready", "dispatch", "busy", 5.0),
            T("child", 3, "busy", "finish", "ready", 5.1)]
    assert any("before it was created" in m for m in violations(tail))
    assert conformance.check(tail, complete=False).ok


@pytest.mark.parametrize(("live", "complaint"), [
    ({("pool", 0): "starting", ("child", 0): "busy"}, "holds it in 'busy' but its history ends"),
    ({("pool", 0): "starting"}, "forgot it, yet its history ends in the non-final state"),
    ({("pool", 0): "starting", ("child", 0): "ready", ("job", 9): "queued"},
     "no record ever mentioned it"),
    ({("pool", 0): "closed", ("child", 0): "ready"}, "holds it in 'closed'"),
])
def test_objects_in_a_state_their_history_does_not_explain_are_flagged(
    live: dict[tuple[str, int], str], complaint: str,
) -> None:
    found = violations(child_life(), live=live)
    assert any(complaint in message for message in found), found


def _core_trace() -> tuple[SupervisorCore, list[T]]:
    """The trace of a real core through spawn, a job, a crash, a refill and a close."""
    core = SupervisorCore(PoolConfig(num_idle=1, max_children=2), now=0.0)
    trace: list[T] = []
    to_warm: list[int] = []

    def feed(event: ev.Event) -> None:
        for command in core.handle(event):
            if isinstance(command, T):
                trace.append(command)
            elif isinstance(command, ev.SpawnChild):
                to_warm.append(command.child)

    def warm_all(now: float) -> None:
        while to_warm:
            child = to_warm.pop(0)
            feed(ev.Spawned(now=now, child=child, pid=100 + child))
            feed(ev.Hello(now=now, child=child))
            feed(ev.Ready(now=now, child=child))

    feed(ev.Start(now=0.0))
    warm_all(0.1)
    feed(ev.Submit(now=1.0, job=1))
    feed(ev.JobAck(now=1.1, child=0, job=1))
    feed(ev.ChildExited(now=1.2, child=0, code=-9))
    feed(ev.Submit(now=1.3, job=2))
    warm_all(1.4)
    feed(ev.Close(now=2.0))
    for child in list(core.children):
        feed(ev.ChildExited(now=2.1, child=child, code=0))
    return core, trace


def test_the_real_cores_trace_conforms_and_damaging_it_is_flagged() -> None:
    core, trace = _core_trace()
    assert core.pool_state == "closed"
    report = conformance.check(trace, conformance.live_states(core))
    assert report.ok, str(report)
    assert len(trace) > 20
    # Drop any one record that is not an object's last: the replay must notice.
    last_of = {(r.kind, r.ident): i for i, r in enumerate(trace)}
    for i, record in enumerate(trace):
        if last_of[(record.kind, record.ident)] == i or record.source == "":
            continue
        damaged = trace[:i] + trace[i + 1:]
        assert not conformance.check(damaged, conformance.live_states(core)).ok, record


def test_pool_records_and_commands_are_both_accepted() -> None:
    _, trace = _core_trace()
    records = [TransitionRecord(t.kind, t.ident, t.source, t.event, t.dest, t.now)
               for t in trace]
    assert conformance.check(records).ok
    shuffled = [records[0], *records[2:], records[1]]
    assert not conformance.check(shuffled).ok


def test_the_autouse_check_fails_a_test_whose_pool_trace_is_forged(tmp_path: Path) -> None:
    """The fixture in tests/conftest.py turns a forged trace into a failing test."""
    tests_dir = Path(__file__).resolve().parent.parent
    (tmp_path / "conftest.py").write_text((tests_dir / "conftest.py").read_text())
    (tmp_path / "test_forged.py").write_text(textwrap.dedent("""
        import asyncio

        from fsm import events as ev
        from runtime import Pool, PoolConfig


        async def scenario(forge):
            async with Pool(PoolConfig(num_idle=1, max_children=1, start_method="fork")) as pool:
                assert await pool.run(abs, -3) == 3
                if forge:
                    # As if the runtime had performed a transition the specs forbid.
                    now = pool._core.now
                    pool._perform([ev.Transitioned("child", 0, "ready", "hello", "warming", now)])


        def test_honest():
            asyncio.run(scenario(False))


        def test_forged():
            asyncio.run(scenario(True))
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "2 passed, 1 error" in out, out
    assert "trace conformance" in out and "'hello' is not allowed in 'ready'" in out, out
