"""Apply a mutant to a copy of the tree and ask ``wayout check`` whether it sees it.

A mutant is located by its scope (``SupervisorCore._on_pong``, ``JOB``: a
function or method, a class, or a module-level assignment, found with
``ast``) and an exact text anchor inside that scope's source. The anchor
must occur exactly once there, the mutated file must still compile, and its
syntax tree must differ from the original's: otherwise the mutant is refused
with ``MutantError``, naming it, before anything runs. The core is refactored
while the catalogue lives, so an anchor that drifts fails loudly instead of
silently testing nothing.

Each mutant runs in its own temporary copy of the tree (``.venv``, ``.git``
and caches left out), imported first on ``PYTHONPATH`` in a subprocess: the
working tree is never written, and mutants run in parallel.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from fsm.errors import WayoutError
from runtime.tools.mutation.catalogue import Mutant

#: The fast unit tests of the core (not the checker's own tests): what
#: ``--unit`` runs against each mutant, for comparison.
UNIT_TESTS = (
    "tests/core",
    "tests/test_lifecycles.py",
    "tests/test_core_engines.py",
    "tests/test_spec.py",
    "tests/test_config.py",
)

#: Left out of each copy: environments, history, caches, pictures.
_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    "*.egg-info", "*.svg",
)

#: Run in the copy: refuse to check anything but the copy, then run the CLI.
_DRIVER = (
    "import sys, pathlib\n"
    "root = pathlib.Path(sys.argv[1]).resolve()\n"
    "import fsm, models, runtime\n"
    "for pkg in (fsm, models, runtime):\n"
    "    where = pathlib.Path(pkg.__file__).resolve()\n"
    "    if root not in where.parents:\n"
    "        print(f'{pkg.__name__} imported from {where}, not from the copy {root}',"
    " file=sys.stderr)\n"
    "        sys.exit(3)\n"
    "from runtime.tools.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
_WRONG_IMPORT = 3
#: CPython 3.11's ast.parse is not safe from several threads at once ("AST
#: constructor recursion depth mismatch"): mutants are parsed one at a time.
_AST_LOCK = threading.Lock()


class MutantError(WayoutError):
    """A mutant cannot be applied: its anchor, scope or replacement is wrong."""


# ----------------------------------------------------------------------------
# Applying a mutant
# ----------------------------------------------------------------------------


def repo_root() -> Path:
    """The tree the running wayout was imported from."""
    import fsm

    return Path(fsm.__file__).resolve().parent.parent


def _scope_nodes(tree: ast.Module, scope: str) -> list[ast.stmt]:
    """The nodes named ``scope`` (``Class.method``, ``function``, ``NAME = ...``)."""
    parts = scope.split(".")
    body: list[ast.stmt] = tree.body
    found: list[ast.stmt] = []
    for depth, name in enumerate(parts):
        found = []
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if node.name == name:
                    found.append(node)
            elif isinstance(node, ast.Assign):
                if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                    found.append(node)
            elif isinstance(node, ast.AnnAssign):
                if isinstance(node.target, ast.Name) and node.target.id == name:
                    found.append(node)
        if depth < len(parts) - 1:
            if len(found) != 1 or not isinstance(found[0], ast.ClassDef):
                return []
            body = found[0].body
    return found


def mutate(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` applied; ``MutantError`` if it does not apply exactly."""
    with _AST_LOCK:
        return _mutate(source, mutant)


def _mutate(source: str, mutant: Mutant) -> str:
    where = f"mutant {mutant.id} ({mutant.file}, {mutant.scope})"
    tree = ast.parse(source)
    nodes = _scope_nodes(tree, mutant.scope)
    if len(nodes) != 1:
        raise MutantError(f"{where}: the scope {mutant.scope!r} names {len(nodes)} definitions "
                          "in the file, not one: update the catalogue's scope")
    node = nodes[0]
    lines = source.splitlines(keepends=True)
    start = sum(len(line) for line in lines[:node.lineno - 1])
    end = sum(len(line) for line in lines[:node.end_lineno or node.lineno])
    segment = source[start:end]
    count = segment.count(mutant.anchor)
    if count != 1:
        raise MutantError(
            f"{where}: the anchor {mutant.anchor!r} occurs {count} times in the scope, not "
            "once: the code moved; update the anchor in runtime/tools/mutation/catalogue.py")
    at = start + segment.index(mutant.anchor)
    line_start = source.rfind("\n", 0, at) + 1
    indent = source[line_start:at]
    indent = indent[:len(indent) - len(indent.lstrip())]
    replacement = mutant.replacement.replace("\n", "\n" + indent)
    mutated = source[:at] + replacement + source[at + len(mutant.anchor):]
    try:
        new_tree = ast.parse(mutated)
    except SyntaxError as exc:
        raise MutantError(f"{where}: the mutated file does not parse: {exc}") from None
    if ast.dump(new_tree) == ast.dump(tree):
        raise MutantError(f"{where}: the replacement changes nothing the interpreter sees")
    return mutated


def check_applies(mutants: Sequence[Mutant], root: Path | None = None) -> None:
    """Apply every mutant in memory; ``MutantError`` naming every one that does not apply."""
    root = root or repo_root()
    sources: dict[str, str] = {}
    problems: list[str] = []
    for m in mutants:
        if m.file not in sources:
            sources[m.file] = (root / m.file).read_text(encoding="utf-8")
        try:
            mutate(sources[m.file], m)
        except MutantError as exc:
            problems.append(str(exc))
    ids = [m.id for m in mutants]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        problems.append(f"mutant ids used twice: {', '.join(duplicates)}")
    if problems:
        raise MutantError(f"{len(problems)} mutant(s) do not apply:\n  " + "\n  ".join(problems))


def copy_tree(root: Path, dest: Path, mutant: Mutant | None = None) -> None:
    """Copy the tree at ``root`` to ``dest``, with ``mutant`` applied to the copy."""
    shutil.copytree(root, dest, ignore=_IGNORE, symlinks=True)
    if mutant is not None:
        target = dest / mutant.file
        target.write_text(mutate(target.read_text(encoding="utf-8"), mutant), encoding="utf-8")


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------

CAUGHT, SURVIVED, TIMEOUT, ERROR = "caught", "survived", "timeout", "error"


@dataclass(frozen=True)
class Verdict:
    """What one tool (the checker, or the unit tests) made of one mutant."""

    outcome: str  # CAUGHT | SURVIVED | TIMEOUT | ERROR
    #: Who caught it: a model (check), a test id (unit tests), "load" (the tree
    #: did not even import: a spec check refused it).
    by: str = ""
    #: The property the checker named (safety, way_out, ...), or the test's failure.
    property: str = ""
    message: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """One mutant's results."""

    mutant: Mutant
    check: Verdict
    unit: Verdict | None = None

    @property
    def as_expected(self) -> bool:
        """Caught if it is a real fault; survived if the catalogue says it is equivalent."""
        if self.mutant.equivalent:
            return self.check.outcome == SURVIVED
        return self.check.outcome == CAUGHT


@dataclass(frozen=True)
class Options:
    """How to run each mutant."""

    #: Extra arguments for ``wayout check`` (bounds: ``--jobs 1`` for a quick run).
    check_args: tuple[str, ...] = ()
    unit: bool = False
    timeout: float = 600.0
    root: Path = field(default_factory=repo_root)


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Never a terminal: no progress bars, a fixed width.
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    return env


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run_check(copy: Path, options: Options) -> Verdict:
    """``wayout check`` on the tree at ``copy``: caught if it does not pass."""
    result_file = copy / ".mutants-check.json"
    argv = [sys.executable, "-c", _DRIVER, str(copy), "check", "--summary", "--workers", "1",
            "--out", str(copy / ".mutants-out"), "--json", str(result_file),
            *options.check_args]
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=copy, env=_env(copy), capture_output=True, text=True,
                              timeout=options.timeout, check=False)
    except subprocess.TimeoutExpired:
        return Verdict(TIMEOUT, message=f"wayout check gave no answer in {options.timeout:g} s",
                       seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if proc.returncode == _WRONG_IMPORT:
        return Verdict(ERROR, message=proc.stderr.strip(), seconds=seconds)
    if not result_file.exists():
        if proc.returncode == 0:
            return Verdict(ERROR, message="wayout check exited 0 without writing its results",
                           seconds=seconds)
        # The tree did not load (an import-time check refused the mutant) or check crashed.
        return Verdict(CAUGHT, by="load", property="refused",
                       message=_tail(proc.stderr), seconds=seconds)
    data = json.loads(result_file.read_text(encoding="utf-8"))
    if data["ok"]:
        if proc.returncode != 0:
            return Verdict(ERROR, message=f"exit {proc.returncode} but ok: {_tail(proc.stderr)}",
                           seconds=seconds)
        return Verdict(SURVIVED, seconds=seconds)
    for model in data["models"]:
        if model["as_expected"]:
            continue
        if model["expected"] is not None:
            # A zoo design no longer caught: the mutant broke a shared piece (fsm.spec).
            return Verdict(CAUGHT, by=model["model"], property="zoo verdict changed",
                           message=f"expected {model['expected']}", seconds=seconds)
        if model["violations"]:
            v = model["violations"][0]
            return Verdict(CAUGHT, by=model["model"], property=v["property"],
                           message=v["message"], seconds=seconds)
        return Verdict(CAUGHT, by=model["model"], property="incomplete",
                       message=f"stopped at {model['states']:,} states", seconds=seconds)
    return Verdict(ERROR, message="not ok, but every model as expected", seconds=seconds)


def run_unit(copy: Path, options: Options) -> Verdict:
    """The fast unit tests of the core on the tree at ``copy``."""
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p",
            "no:cacheprovider", "--timeout", "120", *UNIT_TESTS]
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=copy, env=_env(copy), capture_output=True, text=True,
                              timeout=options.timeout, check=False)
    except subprocess.TimeoutExpired:
        return Verdict(TIMEOUT, message=f"the unit tests gave no answer in {options.timeout:g} s",
                       seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if proc.returncode == 0:
        return Verdict(SURVIVED, seconds=seconds)
    failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if failed:
        first = failed[0].split(" ", 1)[1]
        test, _, why = first.partition(" - ")
        return Verdict(CAUGHT, by=test, property="test failed", message=why, seconds=seconds)
    return Verdict(CAUGHT, by="pytest", property=f"exit {proc.returncode}",
                   message=_tail(proc.stdout + proc.stderr), seconds=seconds)


def run_one(mutant: Mutant | None, options: Options) -> Outcome | Verdict:
    """Run ``mutant`` (None: the tree as it is, the baseline) in a copy of its own."""
    with tempfile.TemporaryDirectory(prefix="wayout-mutant-") as tmp:
        copy = Path(tmp) / "tree"
        copy_tree(options.root, copy, mutant)
        check = run_check(copy, options)
        if mutant is None:
            return check
        unit = run_unit(copy, options) if options.unit else None
        return Outcome(mutant, check, unit)


def baseline(options: Options) -> Verdict:
    """The unmutated tree must pass, or every mutant would look caught."""
    verdict = run_one(None, options)
    assert isinstance(verdict, Verdict)
    return verdict


@contextmanager
def snapshot(options: Options) -> Iterator[Options]:
    """``options`` on a frozen copy of its tree: edits to the working tree while
    mutants run (minutes) change nothing in the run."""
    with tempfile.TemporaryDirectory(prefix="wayout-mutants-") as tmp:
        frozen = Path(tmp) / "tree"
        copy_tree(options.root, frozen)
        yield replace(options, root=frozen)


def run_all(mutants: Sequence[Mutant], options: Options, *, workers: int = 2,
            done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every mutant, ``workers`` at a time; results in catalogue order.

    ``options.root`` should be a snapshot (``snapshot``) if the tree may change meanwhile."""
    check_applies(mutants, options.root)

    def one(m: Mutant) -> Outcome:
        outcome = run_one(m, options)
        assert isinstance(outcome, Outcome)
        if done is not None:
            done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, mutants))


def score(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """(caught, real): how many of the non-equivalent mutants the checker caught."""
    real = [o for o in outcomes if not o.mutant.equivalent]
    return sum(1 for o in real if o.check.outcome == CAUGHT), len(real)
