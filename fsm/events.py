"""What the supervisor core consumes (events) and produces (commands).

Events describe what happened: a message from a child, a process exit, a
call from the user, or time passing. Each carries ``now``, the monotonic time
at which the runtime observed it. Commands describe what the runtime must do;
the core never does it itself. Both are frozen dataclasses, so a script of
events is a test and a list of commands is an assertion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fsm import errors

# ----------------------------------------------------------------------------
# Events
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    now: float


# --- from the user ---------------------------------------------------------


@dataclass(frozen=True)
class Start(Event):
    """The pool starts: the first event a core receives."""


@dataclass(frozen=True)
class Submit(Event):
    """A job is submitted. ``timeout`` overrides ``PoolConfig.job_timeout`` for it."""

    job: int
    timeout: float | None = None


@dataclass(frozen=True)
class Cancel(Event):
    job: int


@dataclass(frozen=True)
class Drain(Event):
    """Stop accepting jobs, let accepted jobs finish within drain_timeout, then close."""


@dataclass(frozen=True)
class Close(Event):
    """Stop now: settle every job, stop then kill every child."""


# --- from the runtime's process handling -----------------------------------


@dataclass(frozen=True)
class Spawned(Event):
    """The process of ``child`` exists (answer to ``SpawnChild``)."""

    child: int
    pid: int


@dataclass(frozen=True)
class ChildExited(Event):
    """The process of ``child`` was reaped, or could not be started (``code`` None)."""

    child: int
    code: int | None = None


#: A deadline the core holds, by its record: ("child", id), ("job", id) or
#: ("pool", 0) (``SupervisorCore.due``).
DeadlineOwner = Literal["child", "job", "pool"]
DeadlineKey = tuple[DeadlineOwner, int]


@dataclass(frozen=True)
class DeadlineReached(Event):
    """Time passed: every deadline at or before ``now`` fires, earliest first.

    ``most`` bounds how many record deadlines fire in this event (None: all
    of them). The rest stay due and ``next_deadline()`` still says so: a
    runtime feeds them in the next events, yielding to its loop in between,
    so that a mass timeout (40,000 queued jobs at once) never blocks it.

    Deadlines due at the same time fire in the core's own order (children,
    then jobs, then the pool), or, for the records ``order`` names, in that
    order first. The runtime leaves ``order`` empty; the model checker names
    the records of one instant in each order that can differ in effect, so
    that no tie order is a hidden premise of the proof.
    """

    most: int | None = None
    order: tuple[DeadlineKey, ...] = ()


@dataclass(frozen=True)
class MemorySample(Event):
    """The memory of ``child`` (PSS, else RSS), answering ``SampleMemory``."""

    child: int
    mb: float


# --- from a child, over its control socket ----------------------------------


@dataclass(frozen=True)
class Hello(Event):
    child: int


@dataclass(frozen=True)
class Ready(Event):
    child: int


@dataclass(frozen=True)
class InitError(Event):
    child: int
    reason: str


@dataclass(frozen=True)
class JobAck(Event):
    """The child received ``job`` and is about to call user code."""

    child: int
    job: int


@dataclass(frozen=True)
class JobDone(Event):
    """The job returned; ``result`` is opaque to the core (the runtime's payload)."""

    child: int
    job: int
    result: Any = None


@dataclass(frozen=True)
class JobRaised(Event):
    """The job raised in the child."""

    child: int
    job: int
    error_type: str = ""
    message: str = ""
    traceback: str = ""
    #: the pickled exception (opaque to the core), b"" when it could not be pickled
    exception: bytes = b""


@dataclass(frozen=True)
class CancelAck(Event):
    """The child cancelled ``job`` as asked."""

    child: int
    job: int


@dataclass(frozen=True)
class Pong(Event):
    child: int


@dataclass(frozen=True)
class BadMessage(Event):
    """The child broke the protocol (malformed, oversized or unexpected message)."""

    child: int
    reason: str


# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    pass


@dataclass(frozen=True)
class SpawnChild(Command):
    """Start a process for ``child``; answer with Spawned, or ChildExited(code=None)."""

    child: int


@dataclass(frozen=True)
class SendInit(Command):
    """Tell ``child`` to run the initializer."""

    child: int


@dataclass(frozen=True)
class SendJob(Command):
    child: int
    job: int


@dataclass(frozen=True)
class SendPing(Command):
    child: int


@dataclass(frozen=True)
class SendCancel(Command):
    """Cancel ``job`` in ``child``; the child then exits (it is being stopped)."""

    child: int
    job: int


@dataclass(frozen=True)
class SendStop(Command):
    """Ask ``child`` to exit gracefully."""

    child: int


#: Why a Kill was decided (a fixed set: metrics label kills by it).
KillCause = Literal[
    "spawn_timeout", "initialize_timeout", "ping_timeout", "close_timeout", "ack_timeout",
    "init_error", "memory", "protocol", "cancel", "closing",
]
#: The causes a Kill names, as a tuple (read from ``KillCause``).
KILL_CAUSES: tuple[KillCause, ...] = get_args(KillCause)


@dataclass(frozen=True)
class Kill(Command):
    """SIGKILL the process of ``child``; its reap is bounded by kill_timeout.

    ``reason`` is the sentence for humans; ``cause`` is one of KILL_CAUSES, for
    machines (it does not take part in equality: the reason says it all).
    """

    child: int
    reason: str
    cause: KillCause = field(default="protocol", compare=False)


@dataclass(frozen=True)
class SampleMemory(Command):
    """Measure these children's memory and answer with one MemorySample each."""

    children: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    """How a job ended. ``state`` is its final state in the job lifecycle."""

    state: str
    value: Any = None
    error: type[errors.JobError] | None = None
    message: str = ""
    remote_type: str = ""
    remote_message: str = ""
    remote_traceback: str = ""
    #: the job's own exception, pickled in the child (b"" if it could not be)
    remote_exception: bytes = b""


@dataclass(frozen=True)
class SettleJob(Command):
    """Deliver ``outcome`` to whoever waits for ``job``. Exactly once per job."""

    job: int
    outcome: Outcome


@dataclass(frozen=True)
class ReportAvailability(Command):
    """Whether a job submitted now would be dispatched without waiting on a failing spawn."""

    available: bool
    reason: str


LogLevel = Literal["debug", "info", "warning", "error"]
#: What a Transitioned record is about: one lifecycle of ``fsm.lifecycles``.
RecordKind = Literal["child", "job", "pool"]


@dataclass(frozen=True)
class Log(Command):
    level: LogLevel
    message: str
    child: int | None = None
    job: int | None = None


@dataclass(frozen=True)
class Transitioned(Command):
    """A record of one state change, for traces, metrics and conformance checks."""

    kind: RecordKind
    ident: int
    source: str
    event: str
    dest: str
    now: float
