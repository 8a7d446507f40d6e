"""The core is sans-I/O: fsm/ and models/ do no I/O, start no timers or threads,
and import nothing from runtime/.

The static check reads every module's own imports and calls (so it holds for
code paths no test runs); the dynamic check imports the packages in a fresh
interpreter and looks at what was loaded, which also covers what third-party
dependencies pull in.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_PACKAGES = ("fsm", "models")

# Modules whose presence means I/O, clocks, timers, threads or processes.
FORBIDDEN_MODULES = frozenset(
    {
        "asyncio", "subprocess", "socket", "socketserver", "ssl", "selectors", "select",
        "signal", "threading", "_thread", "multiprocessing", "concurrent", "os", "io",
        "shutil", "pathlib", "tempfile", "glob", "time", "sched", "logging", "http",
        "urllib", "ctypes", "mmap", "fcntl", "sqlite3", "pickle", "psutil", "aiohttp",
        "msgspec", "loky",
        # Dynamic imports would let a module escape this check.
        "importlib",
        # The core never depends on the runtime; the dependency goes the other way.
        "runtime",
    }
)  # fmt: skip
# Built-ins that do I/O or run code chosen at run time.
FORBIDDEN_CALLS = frozenset({"open", "print", "input", "breakpoint", "exec", "eval", "__import__"})
# Exceptions to FORBIDDEN_CALLS, per module, each with its reason.
ALLOWED_CALLS_IN_MODULE: dict[tuple[str, str], str] = {
    # Code built only from the records' own field declarations, at import (as
    # dataclasses builds __init__): the checker's copy and signature run inline.
    ("fsm/codec.py", "exec"): "generating the record codec from its dataclass fields",
    # The same for the events' and commands' constructors (fsm/events.py, _fast_init).
    ("fsm/events.py", "exec"): "generating the events' constructors from their dataclass fields",
}
# Exceptions to FORBIDDEN_MODULES, per package, each with its reason.
ALLOWED_IN_PACKAGE: dict[tuple[str, str], str] = {
    # The model checker reports how long its search took; no decision reads the clock.
    ("models", "time"): "timing the search for its report",
}
# Third-party packages the core may use. ``transitions`` builds the machines;
# ``graphviz`` only for its pure DOT builder (``Digraph(...).source``): a module
# that imports it must not call its renderers, which run the ``dot`` binary.
# ``hypothesis`` only in models/testing.py's functions, imported when they are called
# (it is pure: a random search in memory; and not one of wayout's dependencies).
ALLOWED_THIRD_PARTY = frozenset({"transitions", "graphviz", "hypothesis"})
GRAPHVIZ_RENDERERS = frozenset({"render", "pipe", "view", "save", "unflatten"})


def core_files() -> list[Path]:
    files = sorted(p for pkg in CORE_PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    assert any(p.parent.name == "fsm" for p in files), "fsm/ not found"
    return files


def imported_roots(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return sorted(found)


def violations(rel: str, source: str) -> list[str]:
    """What the module at ``rel`` (relative to the repository) must not do."""
    tree = ast.parse(source, filename=rel)
    package = rel.split("/")[0]
    found: list[str] = []
    for line, root in imported_roots(tree):
        where = f"{rel}:{line}"
        if root in FORBIDDEN_MODULES:
            if (package, root) not in ALLOWED_IN_PACKAGE:
                found.append(f"{where} imports {root}")
        elif root in CORE_PACKAGES or root == "__future__" or (
            root in sys.stdlib_module_names and not root.startswith("_")
        ):
            continue
        elif root in ALLOWED_THIRD_PARTY:
            continue
        else:
            found.append(f"{where} imports {root}, not a known-pure dependency of the core")
    calls = sorted(
        (node.lineno, node.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FORBIDDEN_CALLS
    )
    found += [f"{rel}:{line} calls {name}()" for line, name in calls
              if (rel, name) not in ALLOWED_CALLS_IN_MODULE]
    if "graphviz" in {root for _, root in imported_roots(tree)}:
        renders = sorted(
            (node.lineno, node.func.attr)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in GRAPHVIZ_RENDERERS
        )
        found += [f"{rel}:{line} calls .{name}(), which runs graphviz" for line, name in renders]
    return found


def imports_graphviz(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return "graphviz" in {root for _, root in imported_roots(tree)}


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_module_imports_and_calls_nothing_that_does_io(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    assert violations(rel, path.read_text(encoding="utf-8")) == []


def test_the_static_check_catches_what_it_should() -> None:
    # Guards the test above against a checker that finds nothing.
    source = (
        "import os.path\n"
        "from asyncio import sleep\n"
        "from runtime.tools.cli import main\n"
        "import graphviz\n"
        "import numpy\n"
        "import json, _thread\n"
        "import time\n"
        "def f() -> None:\n"
        "    print(open('x'))\n"
        "    graphviz.Digraph().render('x')\n"
    )
    assert violations("fsm/probe.py", source) == [
        "fsm/probe.py:1 imports os",
        "fsm/probe.py:2 imports asyncio",
        "fsm/probe.py:3 imports runtime",
        "fsm/probe.py:5 imports numpy, not a known-pure dependency of the core",
        "fsm/probe.py:6 imports _thread",
        "fsm/probe.py:7 imports time",
        "fsm/probe.py:9 calls open()",
        "fsm/probe.py:9 calls print()",
        "fsm/probe.py:10 calls .render(), which runs graphviz",
    ]
    assert violations("models/probe.py", "import time\nimport runtime\n") == [
        "models/probe.py:2 imports runtime"
    ]


# Loaded by importing the core, except the modules that import graphviz (it
# imports subprocess for the renderers the static check keeps them from
# calling). threading, os, io, time and logging are not listed: the standard
# library's logging, which transitions uses, loads them on import.
NEVER_LOADED = ("asyncio", "subprocess", "socket", "selectors", "ssl", "multiprocessing",
                "concurrent.futures", "runtime")  # fmt: skip

PROBE = """
import sys
loaded_at_startup = set(sys.modules)
import importlib, json, pkgutil
names = []
for package in {packages!r}:
    pkg = importlib.import_module(package)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{{package}}.")]
for name in names:
    if name not in {skip!r}:
        importlib.import_module(name)
print(json.dumps({{"modules": names, "loaded": sorted(set(sys.modules) - loaded_at_startup)}}))
"""


def test_importing_the_core_loads_no_io_module() -> None:
    packages = [p for p in CORE_PACKAGES if (ROOT / p / "__init__.py").is_file()]
    drawing = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in core_files()
        if imports_graphviz(p)
    )
    assert "fsm.diagram" in drawing
    probe = PROBE.format(packages=packages, skip=set(drawing))
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    result = json.loads(out.stdout)
    expected = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in core_files()}
    expected = {name.removesuffix(".__init__") for name in expected} - set(CORE_PACKAGES)
    assert set(result["modules"]) == expected, "some core modules were not imported"
    loaded = set(result["loaded"])
    offending = sorted(
        name for name in loaded for m in NEVER_LOADED if name == m or name.startswith(f"{m}.")
    )
    assert offending == []
