"""The README's runnable snippets run, as a user would run them (a script file).

Each ```python block of README.md that defines ``main`` is written to a file
and run with this interpreter in a fresh process: start methods other than
fork re-import the main module, so only a real script shows that the snippet
is a correct program. The output is checked against what the README says.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _programs() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    programs = {}
    for block in blocks:
        if "async def main" in block:
            name = "http" if "runtime.http" in block else "quick start"
            programs[name] = block
    return programs


def _run(tmp_path: Path, source: str) -> str:
    script = tmp_path / "snippet.py"
    script.write_text(source, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_readme_has_both_programs() -> None:
    assert set(_programs()) == {"quick start", "http"}


@pytest.mark.timeout(120)
def test_the_quick_start_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    out = _run(tmp_path, _programs()["quick start"]).splitlines()
    assert out[0] == "42"
    # Job ids count per pool: the program's second job is job 1.
    assert out[1].split() == ["1", "2", "True"]
    assert out[2] == "TypeError True"


@pytest.mark.timeout(120)
def test_the_http_example_serves_and_drains(tmp_path: Path) -> None:
    source = _programs()["http"].replace("port=8080", "port=0")
    out = _run(tmp_path, source)
    assert re.fullmatch(r"serving http://127\.0\.0\.1:\d+\n", out), out
