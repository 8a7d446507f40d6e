"""``wayout demo``: the whole tour end to end, and the judgement behind its exit status."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from models.explorer import Result, Stats
from runtime.tools.commands import demo
from runtime.tools.demo import scenes
from runtime.tools.demo.modelcheck import CheckOutcome
from runtime.tools.demo.scenes import Chaos, SceneResult
from runtime.tools.demo.summary import Report, judge_chaos, judge_check
from runtime.tools.demo.timeline import Timeline
from runtime.tools.leaks import Leaks

ROOT = Path(__file__).resolve().parent.parent

#: The quick demo takes about 6 s on an idle 2-core machine; leave room for a loaded one.
DEMO_TIMEOUT_S = 120


def summary_row(out: str, topic: str) -> str:
    """The summary's line for ``topic`` (its first line, if it wraps)."""
    summary = out[out.index("wayout demo: summary"):]
    for line in summary.splitlines():
        if line.strip().startswith(topic):
            return line
    raise AssertionError(f"no summary line for {topic!r} in:\n{summary}")


@pytest.mark.timeout(DEMO_TIMEOUT_S + 10)
def test_quick_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "150"}
    proc = subprocess.run(
        [sys.executable, "-m", "runtime.tools.cli", "demo", "--no-live", "--quick",
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    assert proc.stderr == ""

    # The lifecycles and the model check, with the Z1 story.
    for name in ("child", "job", "pool"):
        assert (tmp_path / f"{name}.dot").is_file()
    assert "child dies while warming (OOM)  <-- fails here" in out
    assert "the fix (PR #1768): verified" in out
    assert "wayout's own core: verified" in out
    assert (tmp_path / "counterexample-z1-agents-js-1748-jobs1-crashes1.svg").is_file()
    assert re.search(r"model check: bug zoo +(\d+)/\1 historical designs caught, 1/1 fix "
                     r"verified +ok", out)

    # Every scene played, in plain lines, and held its checks.
    assert "-- scene 1/6: a warming child is SIGKILLed --" in out
    assert "exited with code -9 while warming" in out
    assert "did not finish its initializer within initialize_timeout=1s" in out
    assert "cancelled (JobTimeout)" in out
    assert re.search(r"job \d+ failed \(ChildDied\): .*memory \d+ MB over memory_limit_mb=150",
                     out)
    for number, scene in enumerate(scenes.SCENES, 1):
        assert summary_row(out, f"scene {number}: {scene.title}").rstrip().endswith("ok")

    assert re.search(r"jobs by outcome +\d+ done, 1 cancelled \(JobTimeout\), 1 failed "
                     r"\(ChildDied\); lost 0; settled twice 0 +ok", out)
    assert re.search(r"faults injected +5 injected, 5 answered, 5 recovered from +ok", out)
    assert re.search(r"leaks after close +0 processes, 0 file descriptors +ok", out)
    assert "every expectation held" in out


def test_usage_errors_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime.tools.cli", "demo", "--bogus"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unrecognized arguments: --bogus" in proc.stderr


# ----------------------------------------------------------------------------
# The judgement: what makes the demo exit non-zero
# ----------------------------------------------------------------------------


def _result(design: str, expected: str | None, found: tuple[str, ...] = ()) -> Result:
    from models.explorer import Trace, TraceStep, Violation

    trace = Trace((TraceStep(None, "s0"),), failing=0)
    return Result(design=design, title=design, parameters="", expected=expected,
                  violations=tuple(Violation(p, "m", trace) for p in found),
                  stats=Stats(states=10, transitions=20, depth=3, seconds=0.1))


def _chaos(timeline: Timeline, *results: SceneResult) -> Chaos:
    config = scenes.pool_config(scenes.QUICK, "/nonexistent")
    return Chaos(timeline, config, list(results))


def _passing_scene() -> SceneResult:
    result = SceneResult("a scene")
    result.check("it held", True)
    return result


def _recovered_fault(timeline: Timeline) -> None:
    fault = timeline.fault("a fault")
    fault.detected = fault.injected + 0.1
    fault.recovered = fault.injected + 0.2


def test_a_zoo_design_not_caught_fails_the_demo() -> None:
    good = [_result("wayout", None), _result("z1-agents-js-1748", "way_out", ("way_out",)),
            _result("z1-fixed-agents-js-1768", None)]
    report = Report()
    judge_check(report, CheckOutcome(good, 1.0, []))
    assert report.ok
    missed = [_result("wayout", None), _result("z1-agents-js-1748", "way_out"),
              _result("z1-fixed-agents-js-1768", None)]
    report = Report()
    judge_check(report, CheckOutcome(missed, 1.0, []))
    assert not report.ok
    assert any("z1-agents-js-1748" in e.detail for e in report.failures)


def test_a_violation_in_wayouts_own_model_fails_the_demo() -> None:
    report = Report()
    judge_check(report, CheckOutcome([_result("wayout", None, ("safety",)),
                                      _result("z1-agents-js-1748", "way_out", ("way_out",))],
                                     1.0, []))
    assert report.failures[0].topic == "model check: wayout's core"


def test_a_clean_chaos_run_passes() -> None:
    timeline = Timeline()
    timeline.job_submitted(0, "a job")
    timeline.jobs[0].settle_count = 1
    timeline.jobs[0].outcome_state = "done"
    _recovered_fault(timeline)
    report = Report()
    judge_chaos(report, _chaos(timeline, _passing_scene()), Leaks((), ()), scene_count=1)
    assert report.ok, report.failures


def test_a_lost_job_fails_the_demo() -> None:
    timeline = Timeline()
    timeline.job_submitted(0, "a job that never settles")
    _recovered_fault(timeline)
    report = Report()
    judge_chaos(report, _chaos(timeline, _passing_scene()), Leaks((), ()), scene_count=1)
    assert [e.topic for e in report.failures] == ["jobs by outcome"]
    assert "lost 1" in report.failures[0].detail


def test_a_job_with_the_wrong_outcome_fails_the_demo() -> None:
    timeline = Timeline()
    job = timeline.job_submitted(0, "a job that must time out", expect="JobTimeout")
    job.settle_count, job.outcome_state = 1, "done"
    _recovered_fault(timeline)
    report = Report()
    judge_chaos(report, _chaos(timeline, _passing_scene()), Leaks((), ()), scene_count=1)
    assert "job 0" in [e.topic for e in report.failures]


def test_a_leak_fails_the_demo() -> None:
    timeline = Timeline()
    _recovered_fault(timeline)
    report = Report()
    judge_chaos(report, _chaos(timeline, _passing_scene()),
                Leaks(("pid 4242 (sleeping)",), ("fd 9 -> socket:[1]",)), scene_count=1)
    failed = {e.topic for e in report.failures}
    assert failed == {"leaks after close", "leaked"}


def test_a_failed_scene_or_a_missing_one_fails_the_demo() -> None:
    timeline = Timeline()
    _recovered_fault(timeline)
    broken = SceneResult("a broken scene")
    broken.check("the pool recovered", False)
    report = Report()
    judge_chaos(report, _chaos(timeline, broken), Leaks((), ()), scene_count=2)
    failed = [e.topic for e in report.failures]
    assert failed == ["scene 1: a broken scene", "chaos"]


def test_a_fault_never_recovered_from_fails_the_demo() -> None:
    timeline = Timeline()
    timeline.fault("a fault nobody answers")
    report = Report()
    judge_chaos(report, _chaos(timeline, _passing_scene()), Leaks((), ()), scene_count=1)
    assert [e.topic for e in report.failures] == ["faults injected"]


def test_a_section_that_raises_is_reported_and_the_rest_still_runs(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ran = []

    def broken(d: demo.Demo) -> None:
        raise RuntimeError("on purpose")

    def fine(d: demo.Demo) -> None:
        ran.append("fine")
        d.report.expect("fine", "it ran", True)

    monkeypatch.setattr(demo, "SECTIONS", [("broken", "broken", broken), ("fine", "fine", fine)])
    monkeypatch.setattr(demo, "intro", lambda d: None)
    args = argparse.Namespace(no_live=True, quick=True, out=None)
    assert demo.run(args) == 1
    assert ran == ["fine"]
    out = capsys.readouterr().out
    assert "the section failed: RuntimeError: on purpose" in out


def test_summary_reads_as_plain_text() -> None:
    timeline = Timeline()
    _recovered_fault(timeline)
    report = Report()
    judge_chaos(report, _chaos(timeline, _passing_scene()), Leaks((), ()), scene_count=1)
    console = Console(width=150, record=True, force_terminal=False)
    from runtime.tools.demo.summary import print_report

    print_report(console, report)
    text = console.export_text()
    assert re.search(r"leaks after close +0 processes, 0 file descriptors +ok", text)
    assert "every expectation held" in text


def test_without_graphviz_the_lifecycles_are_written_as_dot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from fsm.diagram import dot_files
    from runtime.tools.commands import diagrams

    monkeypatch.setattr(diagrams, "find_dot", lambda: None)
    monkeypatch.setattr(demo, "SECTIONS", demo.SECTIONS[:1])
    monkeypatch.setattr(demo, "intro", lambda d: None)
    args = argparse.Namespace(no_live=True, quick=True, out=tmp_path)
    assert demo.run(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dot_files())
    out = capsys.readouterr().out
    assert "graphviz 'dot' not found" in out
    # The folder may wrap onto the row's next line (a long tmp_path): the row's
    # first line carries the verdict.
    assert re.search(r"lifecycle diagrams +3 lifecycles checked and drawn to .* ok\b", out)
