"""``wayout check --design``: a user's own Design, from a file or a module, with parameters.

The designs are the ones under tests/examples/ (outside the package, as a
user's would be): the tutorial's and two historical supervisor designs, each
caught (exit 1) and each fix passing (exit 0).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from models.report import picture_name
from runtime.tools.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CASES = [
    ("tutorial_pool.py:RestartingPool", [], 1),
    ("tutorial_pool.py:RestartingPool", ["restart_on_signal=true"], 0),
    ("celery_prefork.py:PreforkWorker", [], 1),
    ("celery_prefork.py:PreforkWorker", ["acks_late=yes", "tasks=3"], 0),
    ("k8s_liveness.py:LivenessProbe", [], 1),
    ("k8s_liveness.py:LivenessProbe", ["probe=http"], 0),
]


def check(ref: str, params: list[str], out: Path) -> int:
    args = ["check", "--design", ref, "--out", str(out)]
    for p in params:
        args += ["--param", p]
    return main(args)


@pytest.mark.parametrize(("ref", "params", "status"), CASES,
                         ids=[f"{r.split(':')[1]}-{'-'.join(p) or 'bug'}" for r, p, _ in CASES])
def test_examples_exit_with_the_right_status(ref: str, params: list[str], status: int,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert check(str(EXAMPLES / ref), params, tmp_path) == status
    out = capsys.readouterr().out
    if status:
        assert "way_out violated" in out and "<-- trapped" in out
        assert len(list(tmp_path.glob("counterexample-*.svg"))) == 1
    else:
        assert "verified" in out and list(tmp_path.iterdir()) == []


def test_the_wedge_trace_goes_on_into_the_trap(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert check(str(EXAMPLES / "tutorial_pool.py:RestartingPool"), ["jobs=1"], tmp_path) == 1
    out = capsys.readouterr().out
    assert "SIGKILLs the worker (exit status -9)  <-- fails here (no way out from here on)" in out
    assert "1 more into the trap" in out
    assert "user submits job 0  <-- trapped: the system never leaves it" in out
    svg = next(tmp_path.glob("*.svg")).read_text(encoding="utf-8")
    assert "TRAPPED" in svg


def test_expected_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "known_bad.py").write_text(textwrap.dedent("""
        from tutorial_pool import RestartingPool
        from models.design import WAY_OUT

        class KnownBad(RestartingPool):
            expected = WAY_OUT
        """), encoding="utf-8")
    (tmp_path / "tutorial_pool.py").write_text(
        (EXAMPLES / "tutorial_pool.py").read_text(encoding="utf-8"), encoding="utf-8")
    ref = str(tmp_path / "known_bad.py:KnownBad")
    assert check(ref, [], tmp_path / "out") == 0  # the bug it declares is found
    assert check(ref, ["restart_on_signal=1"], tmp_path / "out") == 1  # ...and is missing


def test_pictures_of_two_parameter_sets_do_not_overwrite_each_other(tmp_path: Path) -> None:
    ref = str(EXAMPLES / "tutorial_pool.py:RestartingPool")
    assert check(ref, ["jobs=1"], tmp_path) == 1
    assert check(ref, ["jobs=2"], tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        picture_name("restarting-pool", "jobs=1 deaths=1 restart_on_signal=False"),
        picture_name("restarting-pool", "jobs=2 deaths=1 restart_on_signal=False"),
    ]
    assert picture_name("a b", "x=1 y=/2") == "counterexample-a-b-x1-y-2.svg"


def test_a_design_from_an_importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    assert check("k8s_liveness:LivenessProbe", ["probe=http", "requests=1"], tmp_path) == 0
    assert "requests=1 hangs=1 probe=http" in capsys.readouterr().out


@pytest.mark.parametrize(("ref", "params", "message"), [
    ("nowhere/design.py:X", [], "no file nowhere/design.py"),
    ("k8s_liveness.py", [], "expected FILE.py:NAME or MODULE:NAME"),
    ("{ex}/k8s_liveness.py:Nope", [], "has no 'Nope' (it defines: "),
    ("{ex}/k8s_liveness.py:PROBES", [], "is a tuple, not a models.design.Design subclass"),
    ("{ex}/k8s_liveness.py:Pod", [], "is the class Pod, not a models.design.Design subclass"),
    ("{ex}/k8s_liveness.py:LivenessProbe", ["colour=red"],
     "LivenessProbe takes no parameter 'colour'; it takes: requests: int=2, hangs: int=1, "
     "probe: str='process', failure_threshold: int=2"),
    ("{ex}/k8s_liveness.py:LivenessProbe", ["requests=many"],
     "LivenessProbe's requests is int, and 'many' is not one"),
    ("{ex}/k8s_liveness.py:LivenessProbe", ["probe=tcp"],
     "raised ValueError: probe must be one of process, http, not 'tcp'"),
    ("{ex}/k8s_liveness.py:LivenessProbe", ["probe"], "expected NAME=VALUE"),
    ("no_such_module_xyz:Design", [], "no module 'no_such_module_xyz'"),
    ("models.design:Design", [], "Design is abstract: it does not define initial, quiescent, "
     "successors"),
])
def test_bad_references_are_one_line_errors(ref: str, params: list[str], message: str,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert check(ref.format(ex=EXAMPLES), params, tmp_path) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("wayout: ")
    assert message in err


def test_a_users_own_models_package_does_not_shadow_wayouts(tmp_path: Path) -> None:
    # The user's project has a package named `models` (say, its ORM models) next to
    # the design, and runs wayout from the project's folder.
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "__init__.py").write_text("ORM = 'the user\\'s own models'\n",
                                                    encoding="utf-8")
    (project / "pool_design.py").write_text(
        (EXAMPLES / "tutorial_pool.py").read_text(encoding="utf-8"), encoding="utf-8")
    wayout = Path(sys.executable).parent / "wayout"
    run = subprocess.run(
        [str(wayout), "check", "--summary", "--design", "pool_design.py:RestartingPool",
         "--out", str(tmp_path / "out")],
        cwd=project, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stderr
    assert "VIOLATED" in run.stdout


def test_the_tutorial_shows_the_example_file_as_it_is() -> None:
    readme = (Path(__file__).resolve().parent.parent.parent / "models" / "README.md").read_text(
        encoding="utf-8")
    section = readme.split("## Check your own design", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == (EXAMPLES / "tutorial_pool.py").read_text(encoding="utf-8")
