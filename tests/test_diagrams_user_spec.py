"""``wayout diagrams --spec``: a user's own LifecycleSpec, validated as wayout's are."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.tools.cli import main

EXAMPLES = Path(__file__).resolve().parent / "examples"
DOOR = f"{EXAMPLES / 'door_lifecycle.py'}:DOOR"


def test_a_user_spec_is_drawn_and_checked(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagrams", "--spec", DOOR, "--out", str(tmp_path)]) == 0
    dot = (tmp_path / "door.dot").read_text(encoding="utf-8")
    assert "motor_timeout" in dot and "hold_open" in dot and "fully_open" in dot
    assert not (tmp_path / "child.dot").exists()  # wayout's own are not drawn with --spec
    assert main(["diagrams", "--spec", DOOR, "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "door.dot").write_text(dot.replace("hold_open", "hold"), encoding="utf-8")
    capsys.readouterr()
    assert main(["diagrams", "--spec", DOOR, "--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "door.dot: differs from the spec 'door'" in err
    assert f"regenerate them with: wayout diagrams --spec {DOOR}" in err


def test_a_list_of_specs_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    assert main(["diagrams", "--spec", "fsm.lifecycles:ALL", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.dot")) == ["child.dot", "job.dot", "pool.dot"]


def test_an_invalid_spec_is_refused_where_it_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad_spec.py"
    bad.write_text(
        "from fsm import LifecycleSpec, State, Transition\n"
        "BAD = LifecycleSpec(name='bad', initial='a', states=[State('a'), "
        "State('b', final=True)], transitions=[Transition('go', 'a', 'b')])\n",
        encoding="utf-8")
    assert main(["diagrams", "--spec", f"{bad}:BAD", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "SpecError: lifecycle 'bad': non-final state 'a' has no timeout" in err
    assert err.rstrip().endswith(f"at {bad}:2")
    assert list(tmp_path.glob("*.dot")) == []


def test_something_else_is_not_a_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagrams", "--spec", f"{EXAMPLES / 'door_lifecycle.py'}:State"]) == 1
    assert "is the class State, not an fsm.LifecycleSpec" in capsys.readouterr().err
