"""The script driver's own checks must be able to fail, or the tests using them prove nothing."""

from __future__ import annotations

import pytest

from fsm import events as ev
from fsm.errors import NoCapacity

from .script import ANY, Has, Script, check_invariants, settle


def test_has_matches_fragments_only() -> None:
    assert Has("spawn_timeout") == "sent no hello within spawn_timeout=1s"
    assert "sent no hello within spawn_timeout=1s" == Has("spawn_timeout")
    assert Has("spawn_timeout") != "sent no ack within ack_timeout=5s"
    assert ev.Kill(0, "a b c") == ev.Kill(0, Has("b"))
    assert ev.Kill(0, "a b c") != ev.Kill(0, Has("d"))
    assert ev.Kill(0, "a b c") != ev.Kill(1, ANY)
    assert settle(1, "failed", NoCapacity, "queue") != settle(1, "failed", None, "queue")


def test_check_invariants_catches_a_job_without_deadline() -> None:
    s = Script()
    s(ev.Submit(0.0, 1))
    s.core.jobs[1].deadline = None
    with pytest.raises(AssertionError):
        check_invariants(s.core)


def test_check_invariants_catches_a_settled_job_still_live() -> None:
    s = Script()
    s(ev.Submit(0.0, 1))
    with pytest.raises(AssertionError, match="settled but is still live"):
        check_invariants(s.core, settled=[1])


def test_check_invariants_catches_a_child_without_deadline() -> None:
    s = Script()
    s.core.children[0].deadline = None
    with pytest.raises(AssertionError):
        check_invariants(s.core)


def test_script_refuses_a_second_settlement(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Script()
    s(ev.Submit(0.0, 1))
    s(ev.Cancel(0.1, 1))
    # A buggy core that settles job 1 again.
    monkeypatch.setattr(s.core, "handle", lambda event: [settle(1, "done")])
    with pytest.raises(AssertionError, match="job 1 settled twice"):
        s(ev.DeadlineReached(0.2))
