"""``wayout diagrams``: write the lifecycle diagrams, or check the committed ones.

The DOT source comes from ``fsm.diagram`` (pure); this module does the file
I/O and runs graphviz's ``dot`` to render SVG when it is installed. ``--check``
compares only the ``.dot`` files: the SVG bytes depend on the graphviz version.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out if args.out is not None else default_dir()
    if args.check:
        stale = check(out)
        for line in stale:
            print(line, file=sys.stderr)
        if stale:
            print("regenerate them with: wayout diagrams", file=sys.stderr)
            return 1
        print(f"diagrams in {out} match the specs ({len(fsm.ALL)} lifecycles)")
        return 0
    for line in write(out):
        print(line)
    return 0


def default_dir() -> Path:
    """``diagrams/`` of the source checkout wayout runs from, else ``./diagrams``."""
    checkout = Path(fsm.__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "diagrams"
    return Path("diagrams")


def check(out: Path) -> list[str]:
    """One line per committed .dot that is missing or differs from the specs."""
    problems: list[str] = []
    for filename, source in dot_files().items():
        path = out / filename
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != source:
            problems.append(f"{path}: differs from the spec {filename.removesuffix('.dot')!r}")
    return problems


def write(out: Path) -> list[str]:
    """Write every .dot (and .svg when ``dot`` exists); return what was done, one line each."""
    out.mkdir(parents=True, exist_ok=True)
    dot = find_dot()
    done: list[str] = []
    for filename, source in dot_files().items():
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
