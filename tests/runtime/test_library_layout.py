"""runtime/'s root is the library a user imports; its tooling (runtime/tools/) is not.

The library never imports the tooling, so that ``import runtime`` and a child
process pay for neither the CLI nor the bench, the demo or the soak, and so
that the tools can change without touching what users depend on.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted(p for p in (ROOT / "runtime").glob("*.py"))


def tool_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + (
                [f"{node.module}.{a.name}" for a in node.names] if node.module == "runtime" else [])
        found += [f"{path.name}:{node.lineno} imports {n}" for n in names
                  if n == "runtime.tools" or n.startswith("runtime.tools.")]
    return found


def test_the_library_modules_never_import_the_tools() -> None:
    assert len(LIBRARY) > 5, LIBRARY
    assert [hit for path in LIBRARY for hit in tool_imports(path)] == []


def test_tool_imports_are_seen_by_the_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from runtime.tools import soak\nimport runtime.tools.cli\n", encoding="utf-8")
    assert tool_imports(bad) == ["bad.py:1 imports runtime.tools",
                                 "bad.py:2 imports runtime.tools.cli"]


def test_importing_every_library_module_loads_no_tool() -> None:
    names = [f"runtime.{p.stem}" for p in LIBRARY if p.stem != "__init__"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('runtime.tools'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == []
