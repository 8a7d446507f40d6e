"""Z1 — agents-js #1748: ``initialize()`` waits for a message that never comes.

The pool's watch task spawns a process and parks in ``await initialize()``,
holding the init mutex and its pool slot (with one idle process, the only
slot). ``initialize()`` completes only when the child's first IPC message
arrives. A child that dies while warming (OOM, import crash) sends neither a
message nor an error event, and the init timer only rejects a side future: it
neither kills the child nor unblocks ``initialize()``. The warm queue never
refills; every accepted job waits on ``queue.get()``; availability is based on
CPU load, so the worker keeps accepting jobs.

The fix (PR #1768) races the first message, the child's exit and the timer;
on timeout it kills the child; any failure releases the slot, so the pool
replenishes.

The child lifecycle is written as a ``LifecycleSpec`` for both designs. The
pre-fix one *passes* the spec's own checks, because on paper ``warming`` can
reach a final state through the first message. What the spec cannot see is
that a dead process sends nothing: the explorer, which plays the world, can.
(Written honestly, with no timeout on ``warming``, the spec is refused at
construction: see tests/models/test_zoo.py.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from fsm.spec import LifecycleSpec, State, Transition
from models.design import WAY_OUT, Design, Goal, Step

#: The child as agents-js' pool sees it before the fix. The timer's edge leads
#: back to ``warming``: it rejects a side future and nothing moves. No edge
#: leaves ``warming`` on the process's exit: nothing awaits it there.
PRE_FIX_CHILD = LifecycleSpec(
    name="agents-js child before #1768",
    initial="warming",
    states=[
        State("warming", timeout="initialize_timeout", on_timeout="warming",
              doc="initialize() awaits the first IPC message"),
        State("ready", timeout="ping_timeout", on_timeout="gone", doc="in the warm queue"),
        State("busy", timeout="ping_timeout", on_timeout="gone", doc="running one job"),
        State("gone", final=True, doc="exited"),
    ],
    transitions=[
        Transition("first_message", "warming", "ready"),
        Transition("take", "ready", "busy"),
        Transition("finish", "busy", "gone"),
        Transition("exit", ("ready", "busy"), "gone"),
    ],
)

#: The child after PR #1768: the timer kills, and an exit while warming is seen.
FIXED_CHILD = LifecycleSpec(
    name="agents-js child after #1768",
    initial="warming",
    states=[
        State("warming", timeout="initialize_timeout", on_timeout="gone",
              doc="first message, exit and timer race; the timer kills the child"),
        State("ready", timeout="ping_timeout", on_timeout="gone", doc="in the warm queue"),
        State("busy", timeout="ping_timeout", on_timeout="gone", doc="running one job"),
        State("gone", final=True, doc="exited or killed"),
    ],
    transitions=[
        Transition("first_message", "warming", "ready"),
        Transition("take", "ready", "busy"),
        Transition("finish", "busy", "gone"),
        Transition("exit", ("warming", "ready", "busy"), "gone"),
    ],
)


class Z1State(NamedTuple):
    #: The child being initialized by the watch task: its lifecycle state, or "" if none.
    child: str
    #: Whether that child's process is still alive.
    alive: bool
    #: Whether its init timer has fired already (it fires once).
    timer_fired: bool
    #: Processes in the warm queue (the target is one).
    warm: int
    #: Jobs parked in ``queue.get()``, and jobs running.
    waiting: int
    running: int
    submitted: int
    done: int
    #: Deaths the world may still cause (a crash is the world's choice; bounded).
    crashes_left: int


class AgentsJs1748(Design[Z1State]):
    """The pool's watch task with one slot, driving the child spec above."""

    name = "z1-agents-js-1748"
    title = "agents-js #1748: initialize() parks on a dead child, the pool never refills"
    expected: str | None = WAY_OUT
    source = "livekit/agents-js #1748 (fixed by PR #1768)"
    spec: LifecycleSpec = PRE_FIX_CHILD

    def __init__(self, jobs: int = 1, crashes: int = 1) -> None:
        self.jobs = jobs
        self.crashes = crashes

    def parameters(self) -> str:
        return f"jobs={self.jobs} crashes={self.crashes}"

    def initial(self) -> Z1State:
        return Z1State("", False, False, 0, 0, 0, 0, 0, self.crashes)

    def _move(self, s: Z1State, event: str) -> Z1State | None:
        """The child's next state on ``event`` per the spec, as a pool state; None if refused."""
        dest = self.spec.successor(s.child, event)
        if dest is None:
            return None
        if dest == "ready":  # initialize() returned: into the warm queue, slot released
            return s._replace(child="", alive=False, timer_fired=False, warm=s.warm + 1)
        if dest == "gone":  # the watch task sees the failure and releases the slot
            return s._replace(child="", alive=False, timer_fired=False)
        return s._replace(child=dest)

    def successors(self, s: Z1State) -> Iterator[Step[Z1State]]:
        if s.child == "" and s.warm == 0:
            yield Step("watch task spawns a child and awaits initialize()",
                       s._replace(child=self.spec.initial, alive=True), spawns=1)
        if s.child == "warming":
            if s.alive:
                nxt = self._move(s, "first_message")
                if nxt is not None:
                    yield Step("child sends its first message", nxt)
                if s.crashes_left:
                    died = s._replace(alive=False, crashes_left=s.crashes_left - 1)
                    seen = self._move(died, "exit")
                    yield Step("child dies while warming (OOM)",
                               died if seen is None else seen)
            if not s.timer_fired:
                nxt = self._move(s, "timeout")
                if nxt is not None:
                    if nxt.child == s.child:
                        nxt = nxt._replace(timer_fired=True)
                    yield Step("init timer fires", nxt, time_passed=True)
        if s.submitted < self.jobs:
            # Availability is CPU-based: the worker always accepts.
            yield Step(f"user submits job {s.submitted}",
                       s._replace(submitted=s.submitted + 1, waiting=s.waiting + 1))
        if s.waiting and s.warm:
            yield Step("a waiting job takes the warm process",
                       s._replace(waiting=s.waiting - 1, warm=s.warm - 1, running=s.running + 1))
        if s.running:
            yield Step("a job finishes", s._replace(running=s.running - 1, done=s.done + 1))

    def quiescent(self, s: Z1State) -> bool:
        return s.waiting == 0 and s.running == 0 and s.warm == 1

    def goals(self) -> Sequence[Goal[Z1State]]:
        return (Goal(
            "honest_availability",
            when=lambda s: True,  # CPU-based: it always says "available"
            reach=lambda s: s.warm > 0,
            target="a state with a warm process for the job",
            doc="The worker reports itself available, so a job submitted now must be able "
                "to get a warm process.",
        ),)

    def describe(self, s: Z1State) -> str:
        child = "none" if not s.child else f"{s.child}, {'alive' if s.alive else 'DEAD'}"
        if s.child and s.timer_fired:
            child += ", timer fired"
        return (f"initializing: {child}\nwarm queue: {s.warm}/1\n"
                f"jobs waiting {s.waiting}, running {s.running}, done {s.done}")


class AgentsJs1768(AgentsJs1748):
    """The same pool with PR #1768's child lifecycle: it must pass."""

    name = "z1-fixed-agents-js-1768"
    title = "agents-js PR #1768: first message, exit and timer race; any failure frees the slot"
    expected = None
    source = "livekit/agents-js PR #1768"
    spec = FIXED_CHILD
