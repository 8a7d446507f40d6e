"""What the explorer needs to know about a design: the protocol every model implements.

A *design* is a closed system: a pool (wayout's core, or a historical
supervisor's mechanism) together with the world around it (children that
answer, hang or die; timers; a user who submits, cancels and closes). The
explorer knows nothing else about it. It asks for the initial state, for the
successors of a state, for the safety invariants that a state breaks, and
whether a state is *quiescent* (every submitted job has its outcome and the
pool is where it should rest). A new design is one new class, never a change
to the explorer.

Every successor is a ``Step``: the event's label, the next state, whether time
passed on the way (a timer fired), and how many processes the step spawned.
Those two flags are what the hot-loop check needs: a cycle of steps that
spawn while no time passes is a respawn loop that burns a CPU forever.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

#: A safety invariant failed in some reachable state.
SAFETY = "safety"
#: Some reachable state cannot reach any quiescent state.
WAY_OUT = "way_out"
#: A cycle of steps without time passing spawns processes.
NO_HOT_LOOP = "no_hot_loop"

S = TypeVar("S")


class Step(NamedTuple, Generic[S]):
    """One event the world (or the design itself) may produce in a state.

    ``broken`` lists safety invariants of the *step itself* that it breaks
    (e.g. "a job was settled twice", "the core raised"): properties of what
    happened rather than of where the system ended up.
    """

    label: str
    state: S
    time_passed: bool = False
    spawns: int = 0
    broken: tuple[str, ...] = ()


@dataclass(frozen=True)
class Goal(Generic[S]):
    """A "leads-to" property: from every reachable state where ``when`` holds,
    some state where ``reach`` holds must be reachable.

    ``way_out`` is the goal (always, quiescent); a design may add more, such as
    "whenever the pool says it is available, a job can still be served".
    """

    name: str
    when: Callable[[S], bool]
    reach: Callable[[S], bool]
    #: What a ``reach`` state is, in a few words, for reports.
    target: str = "its goal"
    doc: str = ""


class Design(ABC, Generic[S]):
    """A model the explorer can check. Subclass it; see the zoo for short examples.

    States must be hashable (or ``key`` must map them to something hashable
    that identifies them up to behaviour), and ``successors`` must be a
    function of the state alone: the explorer replays it to rebuild traces.
    """

    #: Short unique name, used on the command line and in file names.
    name: str = "design"
    #: One line: what this design is.
    title: str = ""
    #: The property this design is known to break (``None``: it must pass all).
    expected: str | None = None
    #: Where the design comes from (issue, PR), for the report.
    source: str = ""

    @abstractmethod
    def initial(self) -> S:
        """The state the system starts in."""

    @abstractmethod
    def successors(self, state: S) -> Iterable[Step[S]]:
        """Every event that may happen next, each with the state it leads to."""

    def search_successors(self, state: S) -> Iterable[Step[S]]:
        """What the explorer's search expands ``state`` to: ``successors`` by default.

        A design may return the same steps with an empty label on each step
        that breaks nothing: the search reads the label only of a broken step,
        and traces are rebuilt by replaying ``successors``, labels and all.
        (Labels are text for people; a search builds one per transition.)
        """
        return self.successors(state)

    @abstractmethod
    def quiescent(self, state: S) -> bool:
        """Every submitted job has its outcome and the pool rests where it should."""

    def invariants(self, state: S) -> Sequence[str]:
        """The safety invariants ``state`` breaks, each as a sentence (none by default)."""
        return ()

    def silent_step(self, state: S) -> Step[S] | None:
        """The step that happens if the world stays silent: only time passes.

        Optional (None: unknown). A design that can say it lets a bounded
        search try "nobody answers, the deadlines fire" cheaply first, which
        is how a design with deadlines everywhere always gets out.
        """
        return None

    def goals(self) -> Sequence[Goal[S]]:
        """Leads-to properties checked besides ``way_out`` (none by default)."""
        return ()

    def key(self, state: S) -> Hashable:
        """What identifies ``state`` for deduplication (the state itself by default).

        A design whose states carry more than their future behaviour depends
        on (absolute times, names of interchangeable children) maps them here
        to a canonical key, so that equivalent states are explored once.
        """
        return state

    def describe(self, state: S) -> str:
        """A short human description of ``state``, one fact per line, for traces."""
        return repr(state)

    def parameters(self) -> str:
        """The bounds this instance was built with, for the report."""
        return ""

