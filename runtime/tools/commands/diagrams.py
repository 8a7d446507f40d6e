"""``wayout diagrams``: write the lifecycle diagrams, or check the committed ones.

The DOT source comes from ``fsm.diagram`` (pure); this module does the file
I/O and runs graphviz's ``dot`` to render SVG when it is installed. ``--check``
compares only the ``.dot`` files: the SVG bytes depend on the graphviz version.

``--spec FILE.py:NAME`` or ``--spec MODULE:NAME`` draws a user's own
``LifecycleSpec`` (or a list or tuple of them) instead of wayout's: the spec
validated when it was constructed, as wayout's own do, so a spec with a state
without a timeout or without a way to a final state fails to load.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsm
from fsm.diagram import dot_files

#: Rendering a small graph takes milliseconds; this only bounds a stuck ``dot``.
RENDER_TIMEOUT_S = 60.0

INSTALL_HINT = "install graphviz for SVG (e.g. apt-get install graphviz)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diagrams",
        help="write diagrams/<lifecycle>.dot and .svg from the lifecycle specs",
        description=(
            "Write diagrams/<lifecycle>.dot for every lifecycle of fsm, and render "
            ".svg with graphviz's dot if it is installed. With --check, write "
            "nothing and exit 1 if a committed .dot differs from the specs."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"directory of the diagrams (default: {default_dir()})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 naming each .dot that differs from what the specs produce",
    )
    parser.add_argument(
        "--spec",
        metavar="FILE.py:NAME|MODULE:NAME",
        help="draw your own LifecycleSpec (or a list of them) instead of wayout's "
        "(default --out: the current directory)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    specs: Sequence[fsm.LifecycleSpec] = fsm.ALL
    again = "wayout diagrams"
    if args.spec is not None:
        specs = load_specs(args.spec)
        again = f"wayout diagrams --spec {args.spec}"
    default = default_dir() if args.spec is None else Path.cwd()
    out: Path = args.out if args.out is not None else default
    if args.check:
        stale = check(out, specs)
        for line in stale:
            print(line, file=sys.stderr)
        if stale:
            print(f"regenerate them with: {again}", file=sys.stderr)
            return 1
        print(f"diagrams in {out} match the specs ({len(specs)} lifecycles)")
        return 0
    for line in write(out, specs):
        print(line)
    return 0


def load_specs(ref: str) -> list[fsm.LifecycleSpec]:
    """The spec(s) ``--spec ref`` names: a ``LifecycleSpec``, or a list or tuple of them."""
    from runtime.tools.loader import WrongKind, load

    obj = load(ref, "--spec")
    if isinstance(obj, fsm.LifecycleSpec):
        return [obj]
    if isinstance(obj, (list, tuple)) and obj and all(
            isinstance(s, fsm.LifecycleSpec) for s in obj):
        return list(obj)
    kind = f"the class {obj.__qualname__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
    raise WrongKind(f"--spec {ref!r} is {kind}, not an fsm.LifecycleSpec (nor a list of them)")


def default_dir() -> Path:
    """``diagrams/`` of the source checkout wayout runs from, else ``./diagrams``."""
    checkout = Path(fsm.__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "diagrams"
    return Path("diagrams")


def check(out: Path, specs: Sequence[fsm.LifecycleSpec] = fsm.ALL) -> list[str]:
    """One line per committed .dot that is missing or differs from the specs."""
    problems: list[str] = []
    for filename, source in dot_files(specs).items():
        path = out / filename
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != source:
            problems.append(f"{path}: differs from the spec {filename.removesuffix('.dot')!r}")
    return problems


def write(out: Path, specs: Sequence[fsm.LifecycleSpec] = fsm.ALL) -> list[str]:
    """Write every .dot (and .svg when ``dot`` exists); return what was done, one line each."""
    out.mkdir(parents=True, exist_ok=True)
    dot = find_dot()
    done: list[str] = []
    for filename, source in dot_files(specs).items():
        dot_path = out / filename
        dot_path.write_text(source, encoding="utf-8")
        if dot is None:
            done.append(f"wrote {dot_path}")
            continue
        svg_path = dot_path.with_suffix(".svg")
        render(dot, dot_path, svg_path)
        done.append(f"wrote {dot_path} and {svg_path}")
    if dot is None:
        done.append(f"graphviz 'dot' not found: wrote DOT only; {INSTALL_HINT}")
    return done


def find_dot() -> str | None:
    """The path of graphviz's ``dot``, or None if it is not installed."""
    return shutil.which("dot")


def render(dot: str, dot_path: Path, svg_path: Path) -> None:
    result = subprocess.run(
        [dot, "-Tsvg", "-o", str(svg_path), str(dot_path)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise DiagramRenderError(
            f"dot could not render {dot_path} (exit {result.returncode}): "
            f"{result.stderr.strip() or 'no message'}; the .dot file was written"
        )


class DiagramRenderError(fsm.WayoutError):
    """graphviz's ``dot`` failed on a generated diagram."""
