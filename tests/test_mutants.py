"""``wayout mutants``: the catalogue applies, anchors fail loudly, the machinery runs.

The full run (every mutant, full bounds) is ``wayout mutants``: minutes, not
part of make test. Here a two-mutant subset runs at small bounds, so that the
tool cannot rot: one real fault that must be caught, one equivalent mutant
that must survive, and the working tree must be left as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.tools.cli import main
from runtime.tools.mutation import engine
from runtime.tools.mutation.catalogue import CATALOGUE, CLASSES, CORE, Mutant, by_id

ROOT = Path(__file__).resolve().parent.parent


def test_every_mutant_of_the_catalogue_applies() -> None:
    # Anchors match exactly once in their scope, every mutated file compiles and
    # differs from the original: the core's refactorings have not left a mutant behind.
    engine.check_applies(CATALOGUE, ROOT)


def test_the_catalogue_covers_every_class_and_explains_each_equivalent() -> None:
    assert len(CATALOGUE) >= 30
    assert {m.klass for m in CATALOGUE} == set(CLASSES)
    assert {m.file for m in CATALOGUE} == {"fsm/core.py", "fsm/lifecycles.py"}
    for m in CATALOGUE:
        assert m.equivalent == "" or len(m.equivalent) > 40, m.id
    issue = {m.id for m in CATALOGUE if m.origin == "issue"}
    assert {"pong-renews-job", "backoff-reenters-backoff", "init-timeout-no-kill",
            "unacked-uses-ack-timeout"} <= issue


def _mutant(anchor: str, replacement: str = "pass", scope: str = "SupervisorCore._on_pong"
            ) -> Mutant:
    return Mutant("test", "deadline", CORE, scope, anchor, replacement, "a test mutant")


SOURCE = (ROOT / CORE).read_text(encoding="utf-8")


def test_an_anchor_that_does_not_match_fails_loudly() -> None:
    with pytest.raises(engine.MutantError, match=r"mutant test .*occurs 0 times"):
        engine.mutate(SOURCE, _mutant("self._fire(child, 'pong')"))


def test_an_anchor_that_matches_twice_fails_loudly() -> None:
    with pytest.raises(engine.MutantError, match="occurs 2 times"):
        engine.mutate(SOURCE, _mutant("self._kill(", scope="SupervisorCore._job_timeout"))


def test_a_scope_that_does_not_exist_fails_loudly() -> None:
    with pytest.raises(engine.MutantError, match="names 0 definitions"):
        engine.mutate(SOURCE, _mutant("pass", scope="SupervisorCore._on_pang"))


def test_a_mutant_that_changes_nothing_is_refused() -> None:
    # A comment is no fault: the syntax tree is the same.
    with pytest.raises(engine.MutantError, match="changes nothing"):
        engine.mutate(SOURCE, _mutant("# re-arms the ping_timeout deadline", "# no comment"))


def test_a_replacement_that_does_not_parse_is_refused() -> None:
    with pytest.raises(engine.MutantError, match="does not parse"):
        engine.mutate(SOURCE, _mutant('self._fire(child, "pong")', "self._fire(child,"))


def test_continuation_lines_are_indented_like_the_anchor() -> None:
    m = _mutant('self._fire(child, "pong")', 'self._fire(child, "pong")\nself._arm(child)')
    mutated = engine.mutate(SOURCE, m)
    line = next(x for x in mutated.splitlines() if 'self._fire(child, "pong")' in x)
    following = mutated.splitlines()[mutated.splitlines().index(line) + 1]
    # (the rest of the anchor's line, its comment, follows the replacement)
    assert following.startswith(line[:len(line) - len(line.lstrip())] + "self._arm(child)")


def test_duplicate_ids_are_refused() -> None:
    m = by_id("no-kill")
    with pytest.raises(engine.MutantError, match="ids used twice: no-kill"):
        engine.check_applies([m, replace(m, description="again")], ROOT)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted((root / "fsm").glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def test_a_subset_runs_caught_and_equivalent_without_touching_the_tree() -> None:
    before = _digest(ROOT)
    options = engine.Options(check_args=("--model", "wayout", "--children", "1", "--jobs", "1"), root=ROOT,
                             timeout=120)
    assert engine.baseline(options).outcome == engine.SURVIVED
    caught, equivalent = by_id("no-settle-cancelled-queued"), by_id("requeue-at-tail")
    assert equivalent.equivalent
    outcomes = engine.run_all([caught, equivalent], options, workers=2)
    first, second = outcomes
    assert first.check.outcome == engine.CAUGHT, first.check
    assert (first.check.by, first.check.property) == ("wayout", "safety")
    assert "job 0 vanished" in first.check.message
    assert second.check.outcome == engine.SURVIVED, second.check
    assert all(o.as_expected for o in outcomes)
    assert engine.score(outcomes) == (1, 1)
    assert _digest(ROOT) == before


def test_a_tree_that_does_not_load_counts_as_refused(tmp_path: Path) -> None:
    # A lifecycle state without a timeout: LifecycleSpec refuses it at import.
    m = Mutant("no-timeout", "table edge", "fsm/lifecycles.py", "JOB",
               'State("running", timeout="job_timeout", on_timeout="cancelling",',
               'State("running",', "running without a deadline")
    engine.copy_tree(ROOT, tmp_path / "tree", m)
    verdict = engine.run_check(tmp_path / "tree", engine.Options(root=ROOT, timeout=120))
    assert (verdict.outcome, verdict.by) == (engine.CAUGHT, "load"), verdict
    assert "running" in verdict.message


def test_the_command_lists_and_refuses_unknown_ids(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mutants", "--list"]) == 0
    out = capsys.readouterr().out
    assert "pong-renews-job" in out and f"{len(CATALOGUE)} in the catalogue" in out
    assert main(["mutants", "no-such-mutant"]) == 1
    assert "no mutant named no-such-mutant" in capsys.readouterr().err
