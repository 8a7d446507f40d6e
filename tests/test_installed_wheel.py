"""The user's way: wayout built as a wheel, installed (not editable) into a fresh venv,
run from a project folder of the user's that has its own ``models`` package.

The designs, settings and lifecycle are the files under tests/examples/ (the
tutorial's of models/README.md and two historical supervisor designs), copied
into that folder: nothing in them can reach the source checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).resolve().parent / "examples"
#: pip and venv on a loaded 2-core machine: generous, only bounds a hang.
INSTALL_TIMEOUT_S = 600

# (arguments after `wayout check`, expected exit status)
CHECKS = [
    (["--design", "tutorial_pool.py:RestartingPool"], 1),
    (["--design", "tutorial_pool.py:RestartingPool", "--param", "restart_on_signal=true"], 0),
    (["--design", "celery_prefork.py:PreforkWorker"], 1),
    (["--design", "celery_prefork.py:PreforkWorker", "--param", "acks_late=true"], 0),
    (["--design", "k8s_liveness.py:LivenessProbe"], 1),
    (["--design", "k8s_liveness.py:LivenessProbe", "--param", "probe=http"], 0),
    (["--config", "pool_settings.py:COLD"], 1),
    (["--config", "pool_settings.py:FIXED"], 0),
]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT_S, check=False)


@pytest.mark.slow
@pytest.mark.ci_slice
def test_the_examples_through_an_installed_wheel(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = tmp_path / "wheels"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                 str(ROOT)], tmp_path, env)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("wayout-*.whl")
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    assert made.returncode == 0, made.stderr
    installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                    tmp_path, env)
    assert installed.returncode == 0, installed.stderr
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "__init__.py").write_text("ORDERS = 'the user\\'s own models'\n",
                                                    encoding="utf-8")
    for example in EXAMPLES.glob("*.py"):
        shutil.copy(example, project / example.name)
    wayout = str(venv / "bin" / "wayout")
    where = run([str(venv / "bin" / "python"), "-c",
                 "import models.design as d; print(d.__file__)"], tmp_path, env)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
    for args, status in CHECKS:
        done = run([wayout, "check", "--summary", *args, "--out", str(tmp_path / "out")],
                   project, env)
        assert done.returncode == status, (args, done.stdout[-2000:], done.stderr)
        assert ("verified" if status == 0 else "VIOLATED") in done.stdout, args
    drawn = run([wayout, "diagrams", "--spec", "door_lifecycle.py:DOOR", "--out",
                 str(tmp_path / "door")], project, env)
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "door" / "door.dot").is_file()
