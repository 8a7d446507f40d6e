"""Deadlines due at the same instant (models/ties.py): every order, reduced soundly."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any

import pytest

from fsm import events as ev
from fsm.core import SupervisorCore
from models.explorer import explore
from models.wayout import WayoutDesign, WayoutServing, model_config


def reachable(design: WayoutDesign) -> set[Hashable]:
    """Every key reachable from the initial state (a plain search, no properties)."""
    init = design.initial()
    seen = {design.key(init)}
    todo = deque([init])
    while todo:
        for step in design.successors(todo.popleft()):
            k = design.key(step.state)
            if k not in seen:
                seen.add(k)
                todo.append(step.state)
    return seen


@pytest.mark.parametrize(("cls", "children", "jobs"), [(WayoutServing, 2, 1),
                                                        (WayoutDesign, 1, 1)])
def test_the_reduced_orders_reach_every_state_that_every_permutation_reaches(
        cls: type[WayoutDesign], children: int, jobs: int) -> None:
    every = reachable(cls(children, jobs, 1, ties="every"))
    reduced = reachable(cls(children, jobs, 1, ties="reduced"))
    core = reachable(cls(children, jobs, 1, ties="core"))
    assert reduced == every
    assert core <= every


def test_a_tie_names_the_records_and_the_core_fires_them_in_that_order() -> None:
    config = model_config(2, idle=2)
    core = SupervisorCore(config)
    core.handle(ev.Start(0.0))
    # Two children spawned at t=0: their spawn deadlines tie at t=1 with the pool's start.
    assert core.due(1.0) == [("child", 0), ("child", 1), ("pool", 0)]
    assert core.due(0.5) == []
    out = core.handle(ev.DeadlineReached(1.0, order=(("child", 1), ("child", 0))))
    kills = [c.child for c in out if isinstance(c, ev.Kill)]
    assert kills == [1, 0]
    out = SupervisorCore(config)
    out.handle(ev.Start(0.0))
    kills = [c.child for c in out.handle(ev.DeadlineReached(1.0)) if isinstance(c, ev.Kill)]
    assert kills == [0, 1]


def test_a_fault_that_only_a_tie_order_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A requeue that leaves the job on its child. In the core's own order the
    child's kill_timeout fires before its job's (both kill_timeout after the
    lost ack), so every requeue happens with the child already gone and the
    fault never shows; with the job's deadline first, the child's abandonment
    finds the requeued job still on it."""
    requeue = SupervisorCore._requeue

    def leaves_it_on_the_child(self: SupervisorCore, job: Any) -> None:
        child = self.children.get(job.child) if job.child is not None else None
        requeue(self, job)
        if child is not None:
            child.job = job.ident

    monkeypatch.setattr(SupervisorCore, "_requeue", leaves_it_on_the_child)
    fixed = explore(WayoutServing(1, 1, 1, ties="core"))
    assert fixed.as_expected, [v.message for v in fixed.violations]
    result = explore(WayoutServing(1, 1, 1, ties="reduced"))
    assert "safety" in result.found
    assert any("(first job 0, child 0)" in label for label in result.violations[0].trace.labels)
