"""``wayout check``: exit status, summary, traces and counterexample pictures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import registry
from models.report import picture_name
from runtime.tools.cli import main


def test_list_names_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        assert name in out


def test_a_zoo_model_fails_with_its_trace_and_picture(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--model", "z1-agents-js-1748", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "way_out violated" in out
    assert "child dies while warming (OOM)" in out
    assert "<-- fails here" in out
    svg = tmp_path / "counterexample-z1-agents-js-1748-jobs1-crashes1.svg"
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "DEAD" in text


def test_a_passing_model_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--model", "z1-fixed-agents-js-1768", "--out", str(tmp_path)]) == 0
    assert "verified" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_json_says_what_the_exit_status_decided(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["check", "--model", "z1-agents-js-1748", "--summary", "--out", str(tmp_path),
            "--json", str(out)]
    assert main(args) == 1
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["ok"] is False
    (model,) = data["models"]
    assert model["model"] == "z1-agents-js-1748"
    assert model["as_expected"] is True  # a zoo design caught, as it must be
    (violation,) = [v for v in model["violations"] if v["property"] == "way_out"]
    assert "child dies while warming (OOM)" in violation["trace"]


def test_wayout_with_small_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--model", "wayout", "--children", "1", "--jobs", "1", "--out",
            str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "children=1" in out and "jobs=1" in out and "verified" in out


def test_every_model_as_expected_in_two_processes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --jobs 1 keeps wayout's models small; the zoo is small anyway.
    args = ["check", "--jobs", "1", "--summary", "--workers", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "every result as expected" in out
    for name in registry.names():
        assert name in out
    pictures = sorted(p.name for p in tmp_path.iterdir())
    zoo = [m for m in registry.MODELS if m.design.expected is not None]
    assert pictures == sorted(picture_name(m.name, m.design.parameters()) for m in zoo)


def test_a_model_stopped_by_the_state_limit_is_not_verified(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--model", "wayout", "--max-states", "100", "--out", str(tmp_path)]
    assert main(args) == 1
    assert "stopped at the state limit (100 states" in capsys.readouterr().out


def test_an_unknown_model_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert "there is no model 'nope'" in err and "wayout check --list" in err


def test_bad_bounds_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--jobs", "-1"])
    assert exit_info.value.code == 2
    assert "must not be negative" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ci_slice
@pytest.mark.timeout(400)  # the whole check: ~110 s idle on a slow 2-core machine, past make test's 120 s per slow test under load
def test_default_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--summary", "--out", str(tmp_path)]) == 0
    assert "every result as expected" in capsys.readouterr().out


def test_core_floor_times_a_clone_and_a_pong_the_core_accepts() -> None:
    from runtime.tools.commands.check import core_floor

    # The floor walks the model to a ready child and times its pong: a walk or
    # an event the core refused would raise here rather than time nothing.
    clone_us, handle_us = core_floor(repeat=50)
    assert clone_us > 0 and handle_us > 0
