"""The diagrams are drawn from the specs, follow their conventions, and are committed in sync.

Also the ``wayout`` command line that writes and checks them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fsm
from fsm.diagram import INITIAL_MARKER, dot_files, to_dot
from fsm.lifecycles import ALL
from fsm.spec import LifecycleSpec, State, Transition
from runtime.tools import cli
from runtime.tools.commands import diagrams as diagrams_command

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "diagrams"

# --- a minimal reader of the DOT that fsm.diagram writes ---------------------------

_ID = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)'
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')
_EDGE = re.compile(rf"^\t({_ID}) -> ({_ID})(?: \[(.*)\])?$")
_NODE = re.compile(rf"^\t({_ID})(?: \[(.*)\])?$")


def _unquote(token: str) -> str:
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _attrs(text: str | None) -> dict[str, str]:
    return {k: _unquote(v) for k, v in _ATTR.findall(text or "")}


def parse(dot: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """Nodes with their attributes, and edges (source, dest, attributes), in order."""
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    for line in dot.splitlines():
        if m := _EDGE.match(line):
            edges.append((_unquote(m[1]), _unquote(m[2]), _attrs(m[3])))
        elif (m := _NODE.match(line)) and m[1] not in ("graph", "node", "edge"):
            nodes[_unquote(m[1])] = _attrs(m[2])
    return nodes, edges


# --- the committed files --------------------------------------------------------------


@pytest.mark.parametrize("filename", sorted(dot_files()))
def test_committed_dot_is_what_the_specs_produce(filename: str) -> None:
    path = COMMITTED / filename
    assert path.is_file(), f"{path} is missing: run `wayout diagrams` and commit it"
    assert path.read_text(encoding="utf-8") == dot_files()[filename], (
        f"{path} is out of date: run `wayout diagrams` and commit diagrams/"
    )


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_committed_svg_exists_for_each_lifecycle(spec: LifecycleSpec) -> None:
    svg = (COMMITTED / f"{spec.name}.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and f"<title>{spec.name}</title>" in svg


def test_dot_is_identical_across_interpreters_with_different_hash_seeds() -> None:
    # Set or dict ordering keyed on str hashes would differ between these runs.
    code = "import sys; from fsm.diagram import dot_files; sys.stdout.write(repr(dot_files()))"
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
            check=True, timeout=60,
        )  # fmt: skip
        outputs.add(run.stdout)
    assert len(outputs) == 1
    assert outputs.pop() == repr(dot_files())


# --- conventions ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_every_spec_edge_is_drawn_once_with_its_label_and_style(spec: LifecycleSpec) -> None:
    _, edges = parse(to_dot(spec))
    drawn = [
        (src, dst, attrs["label"], attrs.get("style", "solid"))
        for src, dst, attrs in edges
        if src != INITIAL_MARKER
    ]
    expected = [
        (e.source, e.dest, e.timeout or e.event, "dashed" if e.timeout else "solid")
        for e in spec.edges
    ]
    assert drawn == expected


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_final_states_are_double_bordered_and_others_are_not(spec: LifecycleSpec) -> None:
    nodes, _ = parse(to_dot(spec))
    bordered = {name for name, attrs in nodes.items() if attrs.get("peripheries") == "2"}
    assert bordered == set(spec.final_states)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_the_initial_state_is_entered_from_a_point(spec: LifecycleSpec) -> None:
    nodes, edges = parse(to_dot(spec))
    assert nodes[INITIAL_MARKER]["shape"] == "point"
    assert [(s, d) for s, d, _ in edges if s == INITIAL_MARKER] == [(INITIAL_MARKER, spec.initial)]
    assert all(d != INITIAL_MARKER for _, d, _ in edges)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_state_docs_are_tooltips(spec: LifecycleSpec) -> None:
    nodes, _ = parse(to_dot(spec))
    assert set(nodes) == {INITIAL_MARKER, *spec.state_names}
    for st in spec.states:
        assert nodes[st.name]["tooltip"] == f"{st.name}: {st.doc}"


def test_quotes_and_backslashes_in_docs_are_escaped() -> None:
    doc = 'waits for "ready" on C:\\pipe'
    spec = LifecycleSpec(
        "quoted",
        [State("a", timeout="t", on_timeout="z", doc=doc), State("z", final=True)],
        [Transition("go", "a", "z")],
        "a",
    )
    dot = to_dot(spec)
    assert 'tooltip="a: waits for \\"ready\\" on C:\\\\pipe"' in dot
    nodes, _ = parse(dot)
    assert nodes["a"]["tooltip"] == f"a: {doc}"


def test_two_lifecycles_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two lifecycles are named 'child'"):
        dot_files([fsm.CHILD, fsm.CHILD])


# --- wayout diagrams / wayout demo / usage errors --------------------------------------------


def fake_dot(tmp_path: Path) -> str:
    """A stand-in for graphviz's dot that records its arguments and writes the -o file."""
    script = tmp_path / "bin" / "dot"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        'echo "$@" >> "$(dirname "$0")/calls"\n'
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && echo "<svg/>" > "$2"; shift; done\n'
    )
    script.chmod(0o755)
    return str(script)


def test_wayout_diagrams_writes_dot_and_renders_svg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dot = fake_dot(tmp_path)
    monkeypatch.setattr(diagrams_command, "find_dot", lambda: dot)
    out = tmp_path / "out"
    assert cli.main(["diagrams", "--out", str(out)]) == 0
    for filename, source in dot_files().items():
        assert (out / filename).read_text(encoding="utf-8") == source
        assert (out / filename).with_suffix(".svg").read_text() == "<svg/>\n"
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls == [f"-Tsvg -o {out / n[:-4]}.svg {out / n}" for n in dot_files()]
    assert f"wrote {out / 'child.dot'} and {out / 'child.svg'}" in capsys.readouterr().out


def test_wayout_diagrams_without_dot_writes_dot_only_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(diagrams_command, "find_dot", lambda: None)
    assert cli.main(["diagrams", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dot_files())
    printed = capsys.readouterr().out
    assert "graphviz 'dot' not found: wrote DOT only" in printed


def test_wayout_diagrams_reports_a_failing_dot_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = tmp_path / "dot"
    failing.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setattr(diagrams_command, "find_dot", lambda: str(failing))
    assert cli.main(["diagrams", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"wayout: DiagramRenderError: dot could not render {tmp_path / 'out' / 'child.dot'} "
        "(exit 3): syntax error in line 1; the .dot file was written\n"
    )


def test_wayout_diagrams_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(diagrams_command, "find_dot", lambda: None)
    assert cli.main(["diagrams", "--out", str(tmp_path)]) == 0
    assert cli.main(["diagrams", "--out", str(tmp_path), "--check"]) == 0
    capsys.readouterr()

    (tmp_path / "job.dot").write_text("digraph job {}\n")
    (tmp_path / "pool.dot").unlink()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert cli.main(["diagrams", "--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{tmp_path / 'job.dot'}: differs from the spec 'job'",
        f"{tmp_path / 'pool.dot'}: missing",
        "regenerate them with: wayout diagrams",
    ]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, "--check wrote files"


def test_wayout_diagrams_check_passes_on_the_committed_diagrams() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "runtime.tools.cli", "diagrams", "--check"], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (run.returncode, run.stderr) == (0, "")
    assert "match the specs (3 lifecycles)" in run.stdout


def test_the_default_output_is_the_checkouts_diagrams_directory() -> None:
    assert diagrams_command.default_dir() == COMMITTED


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "wayout: error: choose a command: "),
        (["bogus"], "wayout: error: argument COMMAND: invalid choice: 'bogus'"),
        (["diagrams", "--nope"], "wayout: error: unrecognized arguments: --nope"),
        (["diagrams", "--out"], "wayout diagrams: error: argument --out: expected one argument"),
    ],
    ids=["no-command", "unknown-command", "unknown-option", "missing-value"],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert re.fullmatch(r"[^\n]*\(see wayout( diagrams)? --help\)\n", captured.err), captured.err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert re.search(rf"^    {name} +\S", out, re.MULTILINE), f"{name} missing from:\n{out}"
