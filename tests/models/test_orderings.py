"""Durations as orderings (models/orderings.py): the covering set and what it catches."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from fsm.config import PoolConfig
from fsm.core import SupervisorCore
from fsm.errors import ConfigError
from models import registry
from models.config_check import DURATIONS
from models.explorer import explore
from models.orderings import (
    ORDERED,
    SUBMIT_TIMEOUT,
    SUMS,
    TRIPLES,
    Orderings,
    coverage,
    covering_orderings,
    orderings_model,
    pattern,
    targets,
)
from models.wayout import WayoutServing, model_config

#: The number of weak orderings of k terms (ordered Bell numbers).
WEAK_ORDERINGS = {2: 3, 3: 13}


#: The settings PoolConfig's validation relates to one another (fsm/config.py).
_RELATED = ("ping_interval", "ping_timeout", "backoff_initial", "backoff_max")


def _refused(a: str, b: str, relation: int) -> bool:
    """Whether PoolConfig refuses every config with ``a`` in ``relation`` to ``b``
    (asked of PoolConfig itself: the related settings low or high, the rest at 3)."""
    rest = [n for n in _RELATED if n not in (a, b)]
    for x, y in itertools.product(range(2, 6), repeat=2):
        if (x > y) - (x < y) != relation:
            continue
        for fills in itertools.product((1.0, 6.0), repeat=len(rest)):
            values = {**dict.fromkeys(DURATIONS, 3.0), **dict(zip(rest, fills, strict=True)),
                      a: float(x), b: float(y)}
            try:
                PoolConfig(**values)
                return False
            except ConfigError:
                pass
    return True


def test_every_relation_of_every_pair_that_poolconfig_accepts_is_counted() -> None:
    refused = sum(_refused(a, b, r) for a, b in itertools.combinations(DURATIONS, 2)
                  for r in (-1, 0, 1))
    # PoolConfig refuses ping_timeout <= ping_interval (two relations) and
    # backoff_max < backoff_initial (one); the submit's own timeout is free.
    assert refused == 3
    pairs = len(ORDERED) * (len(ORDERED) - 1) // 2
    expected = (3 * pairs - refused + WEAK_ORDERINGS[3] * len(TRIPLES)
                + WEAK_ORDERINGS[2] * len(SUMS))
    c = coverage()
    assert len(c.feasible) == expected == 383
    assert c.covered == c.feasible


def test_the_covering_set_realises_every_pattern_and_poolconfig_accepts_each() -> None:
    assignments = covering_orderings()
    seen = set()
    for values in assignments:
        settings: dict[str, Any] = {n: values[n] for n in DURATIONS}
        PoolConfig(**settings)  # raises if PoolConfig refuses the ordering
        for i, t in enumerate(targets()):
            seen.add((i, pattern(values, t.terms)))
    assert seen == set(coverage().feasible)
    # The model's own assignment is one of them, the first.
    assert assignments[0] == {**{n: float(getattr(model_config(), n)) for n in DURATIONS},
                              SUBMIT_TIMEOUT: model_config().job_timeout}
    assert len({tuple(sorted(a.items())) for a in assignments}) == len(assignments)


def test_pattern_is_the_weak_ordering_with_ties() -> None:
    values = {"a": 2.0, "b": 1.0, "c": 2.0}
    assert pattern(values, (("a",), ("b",), ("c",))) == (1, 0, 1)
    assert pattern(values, (("a", "b"), ("c",))) == (1, 0)


def test_the_registry_models_report_how_many_orderings_they_check() -> None:
    for name in ("wayout-orderings", "wayout-serving-orderings"):
        design = registry.build(name)
        assert isinstance(design, Orderings)
        assert design.orderings == len(covering_orderings())
        assert design.parameters().endswith(f"orderings={len(covering_orderings())}")


def _plant_job_deadline(monkeypatch: pytest.MonkeyPatch, state: str,
                        timeout: Callable[[PoolConfig], float]) -> None:
    """A catalogue mutant, planted: a job in ``state`` gets the deadline
    ``now + timeout(config)`` instead of its own."""
    arm = SupervisorCore._arm

    def wrong(self: SupervisorCore, obj: Any) -> None:
        arm(self, obj)
        if obj.kind == "job" and obj.state == state:
            obj.deadline = self.now + timeout(self.config)
            self._push(obj)  # the deadline heap learns every deadline the core sets

    monkeypatch.setattr(SupervisorCore, "_arm", wrong)


def test_the_orderings_catch_a_fault_the_single_assignment_misses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # unacked-uses-ack-timeout: the unacked deadline measured with ack_timeout
    # instead of kill_timeout.
    _plant_job_deadline(monkeypatch, "unacked", lambda config: config.ack_timeout)
    single = explore(WayoutServing(1, 1, 1))
    assert single.as_expected, [v.message for v in single.violations]
    result = explore(orderings_model(WayoutServing, 1, 1, 1, "orderings", ""))
    assert sorted(result.found) == ["safety"]
    violation = result.violations[0]
    # Planted in the core (not in the table), the deadline itself is too far
    # when ack_timeout > kill_timeout; with ack_timeout < kill_timeout the
    # job is requeued while its child may still ack it.
    assert "ran twice" in violation.message or "past kill_timeout" in violation.message
    # The trace starts with the ordering that breaks the core.
    assert violation.trace.labels[0].startswith("durations ")


def test_the_correct_core_passes_every_ordering() -> None:
    result = explore(orderings_model(WayoutServing, 1, 1, 1, "orderings", ""))
    assert result.as_expected, [v.message for v in result.violations]


def test_the_orderings_catch_a_job_run_by_the_pools_timeout_instead_of_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogue's job-timeout-global, planted: a running job's deadline is
    the pool's job_timeout, not the timeout given to submit()."""
    _plant_job_deadline(monkeypatch, "running", lambda config: config.job_timeout)
    single = explore(WayoutServing(1, 1, 1))
    assert single.as_expected, [v.message for v in single.violations]
    result = explore(orderings_model(WayoutServing, 1, 1, 1, "orderings", ""))
    assert sorted(result.found) == ["safety"]
    assert "running with its deadline" in result.violations[0].message
    assert "past its own timeout" in result.violations[0].message
