"""The soak engine and ``wayout soak``: a small soak in make test, bigger ones marked slow,
and proof that the soak fails when a job is wrong or wedged."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest
from reliability_support import live_descendants, run_checked

from fsm.errors import WayoutError
from runtime.tools import cli, soak
from runtime.tools.commands import soak as soak_command


def soak_report(**settings: object) -> soak.SoakReport:
    return run_checked(lambda: soak.run_soak(soak.SoakSettings(**settings)))  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_a_small_soak_loses_leaks_and_wedges_nothing() -> None:
    report = soak_report(jobs=200, fault_rate=0.1, seed=3, start_method="fork")
    assert report.ok, report.problems()
    assert sum(report.outcomes.values()) == 200
    # The seed injects faults of several kinds, and each one that cost a child healed.
    assert sum(report.faults.values()) >= 10 and len(report.faults) >= 4, report.faults
    assert sum(len(t) for t in report.recovery.values()) == sum(report.struck.values()) > 0
    assert report.outcomes["value"] >= 150
    assert report.trace_records > 200 * 4 and not report.trace_violations
    assert not live_descendants()
    text = soak_command.format_plain(report)
    assert "jobs by outcome" in text and "time to recover" in text and text.count("OK:") == 1


@pytest.mark.timeout(120)
def test_the_command_prints_its_summary_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("wayout")
    before = (logger.level, logger.propagate, list(logger.handlers))
    status = cli.main(["soak", "--jobs", "60", "--fault-rate", "0.2", "--seed", "1",
                       "--start-method", "fork", "--concurrency", "4"])
    out = capsys.readouterr().out
    assert status == 0, out
    # The command quiets the pool's warnings while it runs, and only then.
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    for part in ("wayout soak: 60 jobs, fault rate 0.2, seed 1, fork, concurrency 4",
                 "jobs by outcome", "recovered", "p99", "processes leaked after close",
                 "OK: every job settled truthfully"):
        assert part in out, out


@pytest.mark.timeout(60)
def test_a_job_whose_outcome_its_fault_does_not_explain_fails_the_soak(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # "raise" jobs that quietly return a value: the soak must call that wrong.
    monkeypatch.setitem(soak._JOB_FOR, "raise", soak.work)
    status = cli.main(["soak", "--jobs", "12", "--fault-rate", "1", "--faults", "raise",
                       "--start-method", "fork"])
    out = capsys.readouterr().out
    assert status == 1
    assert "12 jobs ended with an outcome their fault does not explain" in out, out
    assert "(fault raise) ended value" in out


@pytest.mark.timeout(60)
def test_a_job_past_its_bound_is_a_wedge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soak, "job_bound", lambda config, timeout: 1e-6)
    report = soak_report(jobs=5, fault_rate=0.0, start_method="fork", concurrency=5)
    assert not report.ok
    assert sorted(report.wedged) == [0, 1, 2, 3, 4]
    assert not report.lost  # they did settle, late (at the latest when the pool closed)
    assert any("settled past their bound" in p for p in report.problems())


def test_settings_are_checked() -> None:
    for bad in ({"fault_rate": 1.5}, {"concurrency": 0}, {"faults": ("meteor",)},
                {"jobs": -1}, {"faults": ()}):
        with pytest.raises(WayoutError):
            soak.SoakSettings(**bad)  # type: ignore[arg-type]
    assert soak.percentile([3.0, 1.0, 2.0], 50) == 2.0
    # Interpolated between ranks, as the bench computes it.
    assert soak.percentile([float(i) for i in range(100)], 99) == pytest.approx(98.01)
    assert math.isnan(soak.percentile([], 50))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("method", "jobs"), [("fork", 10_000), ("forkserver", 10_000),
                                              ("spawn", 3_000)])
def test_a_bigger_soak_under_each_start_method(method: str, jobs: int) -> None:
    report = soak_report(jobs=jobs, fault_rate=0.1, seed=11, start_method=method)
    assert report.ok, report.problems()
    assert sum(report.outcomes.values()) == jobs


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_soak_where_half_the_jobs_fault_with_many_in_flight() -> None:
    report = soak_report(jobs=3000, fault_rate=0.5, seed=5, start_method="fork",
                         concurrency=16)
    assert report.ok, report.problems()


def test_the_soak_runs_in_its_own_loop_only() -> None:
    # run_soak is a coroutine: the command owns the loop, tests can run it in theirs.
    assert asyncio.iscoroutinefunction(soak.run_soak)
