"""Smoke tests of `wayout bench`: a tiny subset runs and its JSON has the promised shape.

No timing is asserted here (timing goals belong to the bench itself); only
structure, sample counts and the signs of the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.tools.bench import executors, latency, plan, runner
from runtime.tools.bench.results import IMPLEMENTATIONS, LOKY, PPE, WAYOUT
from runtime.tools.cli import main

SUMMARY_KEYS = {"n", "p50", "p99", "mean", "best", "worst"}


def test_tiny_latency_and_death_run_gives_every_figure() -> None:
    tiny = plan.TINY
    report = runner.run(tiny, only=["latency", "death"])
    assert report.errors == {}
    data = json.loads(json.dumps(report.as_dict()))  # what --json writes

    assert data["plan"] == "tiny"
    assert data["machine"]["start_method"] == tiny.start_method
    assert data["machine"]["cores"] >= 1
    measures = data["measures"]
    assert set(measures) == {
        "round_trip", "dispatch", "throughput", "throughput_concurrent",
        "executor_round_trip", "death_detection", "replenish", "replenish_floor",
    }
    for key in ("round_trip", "dispatch", "throughput", "throughput_concurrent"):
        figures = measures[key]["figures"]
        assert set(figures) == set(IMPLEMENTATIONS), key
        for impl, summary in figures.items():
            assert set(summary) == SUMMARY_KEYS, (key, impl)
            assert summary["p50"] > 0, (key, impl)
    assert measures["round_trip"]["figures"][WAYOUT]["n"] == tiny.round_trips
    # runtime.Executor's own samples in the wayout columns; the executors' are
    # their round trips of the same rounds.
    executor_rt = measures["executor_round_trip"]["figures"]
    assert set(executor_rt) == set(IMPLEMENTATIONS)
    assert executor_rt[WAYOUT]["n"] == tiny.round_trips
    assert executor_rt[WAYOUT] != measures["round_trip"]["figures"][WAYOUT]
    assert executor_rt[PPE] == measures["round_trip"]["figures"][PPE]
    assert measures["throughput"]["figures"][PPE]["n"] == tiny.latency_rounds
    # The job's start is stamped in the child, after the parent's submit: a
    # dispatch latency <= 0 would mean the clocks are not shared after all.
    for impl in IMPLEMENTATIONS:
        assert measures["dispatch"]["figures"][impl]["best"] > 0, impl

    death = measures["death_detection"]["figures"]
    assert death[WAYOUT]["n"] == tiny.death_samples
    assert death[PPE]["n"] == tiny.executor_death_samples
    assert set(measures["replenish"]["figures"]) == {WAYOUT}
    assert set(measures["replenish"]["missing"]) == {PPE, LOKY}
    # Replenishing includes noticing the death first.
    assert (measures["replenish"]["figures"][WAYOUT]["best"]
            >= measures["death_detection"]["figures"][WAYOUT]["best"])

    judged = {t["measure"]: t for t in data["targets"]}
    assert set(judged) == {"round_trip", "dispatch", "throughput", "throughput_concurrent",
                           "executor_round_trip", "death_detection", "replenish"}
    for verdict in judged.values():
        assert isinstance(verdict["passed"], bool), verdict
        assert verdict["target"] and verdict["value"]


def test_loky_missing_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "loky", None)  # import loky now raises ImportError
    assert "bench" in (executors.loky_missing() or "")
    with pytest.raises(executors.Unavailable):
        executors.make_loky(2)
    out = latency.run(plan.TINY, implementations=(LOKY,))
    for measure in out:
        assert measure.figures == {}
        assert "not installed" in measure.missing[LOKY]


def test_bench_imports_leave_loky_unloaded() -> None:
    code = (
        "import sys, runtime.tools.cli, runtime.tools.commands.bench, runtime.tools.bench.runner; "
        "runtime.tools.cli.build_parser(); "
        "sys.exit('loky' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_cli_writes_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    status = main(["bench", "--quick", "--only", "checker", "--json", str(out)])
    assert status == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["plan"] == "quick"
    checker = data["measures"]["checker"]
    assert checker["figures"][WAYOUT]["p50"] > 0
    assert 0 < checker["extra"]["states"] <= plan.QUICK.checker_states
    # The checker's rate is reported, never judged: it has no goal.
    assert data["targets"] == []
    printed = capsys.readouterr().out
    assert "model checker" in printed and "cores" in printed  # the table and the machine

    # A saved run prints again, as Markdown for the README, without measuring.
    assert main(["bench", "--from-json", str(out), "--markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("| measure |")
    row = next(line for line in markdown.splitlines() if line.startswith("| model checker |"))
    assert f"{checker['figures'][WAYOUT]['p50']:,.0f}" in row


def test_cli_refuses_an_unknown_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "latency,nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
