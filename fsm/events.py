"""What the supervisor core consumes (events) and produces (commands).

Events describe what happened: a message from a child, a process exit, a
call from the user, or time passing. Each carries ``now``, the monotonic time
at which the runtime observed it. Commands describe what the runtime must do;
the core never does it itself. Both are frozen dataclasses, so a script of
events is a test and a list of commands is an assertion.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, is_dataclass
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


# ----------------------------------------------------------------------------
# Faster constructors
# ----------------------------------------------------------------------------


def _fast_init(cls: type[Any]) -> None:
    """Give the frozen dataclass ``cls`` an ``__init__`` that writes its fields
    straight into the instance's ``__dict__``.

    A frozen dataclass's own ``__init__`` sets each field through
    ``object.__setattr__`` (its ``__setattr__`` refuses): about 1 us for a
    Transitioned, twice what this costs. The core builds several commands per
    event it handles, and the model checker has it handle about two million
    events per ``wayout check``. Same fields, order, defaults, equality and
    repr: only how the fields are stored differs (the instance stays frozen).
    """
    params = []
    scope: dict[str, Any] = {}
    for f in fields(cls):
        if not f.init:  # pragma: no cover - none today
            raise TypeError(f"{cls.__name__}.{f.name}: a field outside __init__ needs "
                            "dataclass's init")
        if f.default is not MISSING:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not MISSING:  # pragma: no cover - none today
            raise TypeError(f"{cls.__name__}.{f.name}: a default_factory needs dataclass's init")
        else:
            params.append(f.name)
    body = "".join(f"    d[{f.name!r}] = {f.name}\n" for f in fields(cls))
    source = (f"def __init__(self, {', '.join(params)}):\n    d = self.__dict__\n{body}"
              if params else "def __init__(self):\n    pass\n")
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init


for _cls in [c for c in list(globals().values())
             if isinstance(c, type) and is_dataclass(c) and c.__module__ == __name__]:
    if hasattr(_cls, "__post_init__") or getattr(_cls, "__slots__", None):  # pragma: no cover
        raise TypeError(f"{_cls.__name__}: _fast_init assumes no __post_init__ and no slots")
    _fast_init(_cls)
del _cls
