"""Property tests for any design in one call: hypothesis' stateful search.

Where the explorer enumerates every state within small bounds, this takes
long random walks through a design (bigger bounds, deeper paths) and lets
hypothesis shrink a failure to a minimal story. At every step of the walk it
checks the design's invariants and the step's own, that no more than
``max_spawns_at_once`` processes are spawned in a row while no time passes,
and (with ``check_way_out``) that a quiescent state is still reachable from
here (``models.explorer.reaches``, a bounded search that tries the deadlines
first).

In a user's pytest suite::

    from models.testing import hypothesis_search
    from my_pool import MyPool

    def test_my_pool_on_random_walks():
        hypothesis_search(MyPool(workers=3, jobs=5))

It raises ``AssertionError`` with the shrunk walk on a failure.

hypothesis is not one of wayout's dependencies: it is imported only when
this is called. Install it in the environment that runs your tests
(``pip install hypothesis``, or ``pip install 'wayout[dev]'`` in a checkout).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from models.design import Design, Step
from models.explorer import reaches

#: States the "way out from here" search may visit before it gives up (and fails).
SEARCH_STATES = 3_000


@cache
def design_walk() -> type[Any]:
    """The ``RuleBasedStateMachine`` that walks a design (set its ``design`` in a subclass).

    Built on first use, so that importing this module does not import hypothesis.
    """
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        initialize,
        invariant,
        precondition,
        rule,
    )

    class DesignWalk(RuleBasedStateMachine):
        """A random walk through any design: each step is one of its successors."""

        design: Design[Any]
        #: Spawns allowed in a row while no time passes (a bound on respawn storms).
        max_spawns_at_once: int = 12
        #: Whether to search for a way out after every step.
        check_way_out: bool = True
        #: States that search may visit before it gives up.
        search_states: int = SEARCH_STATES
        #: The labels of the most recent walk (after shrinking: the minimal one).
        last_walk: ClassVar[list[str]] = []

        @initialize()
        def start(self) -> None:
            self.state = self.design.initial()
            self.spawns_at_once = 0
            self.walk: list[str] = []
            type(self).last_walk = self.walk

        def take(self, step: Step[Any]) -> None:
            self.walk.append(step.label)
            assert not step.broken, f"{step.label}: {'; '.join(step.broken)}"
            self.spawns_at_once = 0 if step.time_passed else self.spawns_at_once + step.spawns
            self.state = step.state

        def steps(self) -> list[Step[Any]]:
            return list(self.design.successors(self.state))

        @precondition(lambda self: bool(self.steps()))
        @rule(pick=st.integers(min_value=0, max_value=1_000))
        def any_event(self, pick: int) -> None:
            steps = self.steps()
            self.take(steps[pick % len(steps)])

        @precondition(lambda self: not self.steps())
        @rule()
        def nothing_can_happen(self) -> None:
            """A final state (say, closed with every job settled): the walk rests."""

        @invariant()
        def safe(self) -> None:
            broken = self.design.invariants(self.state)
            assert not broken, "; ".join(broken)

        @invariant()
        def no_respawn_storm(self) -> None:
            assert self.spawns_at_once <= self.max_spawns_at_once, (
                f"{self.spawns_at_once} spawns with no time passing")

        @invariant()
        def way_out(self) -> None:
            if not self.check_way_out:
                return
            found = reaches(self.design, self.state, max_states=self.search_states)
            assert found is not False, "no way out: no quiescent state is reachable from here"
            assert found is True, (
                f"no quiescent state within {self.search_states} states of here")

    return DesignWalk


def walk_of(design: Design[Any], **attrs: Any) -> type[Any]:
    """A ``DesignWalk`` over ``design`` (``attrs`` override its class attributes)."""
    return type(f"Walk_{type(design).__name__}", (design_walk(),), {"design": design, **attrs})


def hypothesis_search(design: Design[Any], *, max_examples: int = 100, steps: int = 50,
                      max_spawns_at_once: int = 12, check_way_out: bool = True,
                      search_states: int = SEARCH_STATES, derandomize: bool = False) -> list[str]:
    """Walk ``design`` at random ``max_examples`` times, ``steps`` events each.

    Returns the last walk's labels when every check held; raises
    ``AssertionError`` (hypothesis prints the shrunk walk) when one did not.
    """
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    machine = walk_of(design, max_spawns_at_once=max_spawns_at_once,
                      check_way_out=check_way_out, search_states=search_states)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=max_examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow], derandomize=derandomize))
    walk: list[str] = machine.last_walk
    return walk
