"""Every error wayout raises, under one base class.

They live in the sans-I/O core because the core is what decides them: a job's
outcome (``NoCapacity``, ``JobTimeout``, ``ChildDied``...) is chosen by
``fsm.core`` and only delivered by ``runtime``, which re-exports this module as
``runtime.errors``. Each message says what happened, to which child or job, and
what the user can do about it.
"""

from __future__ import annotations


class WayoutError(Exception):
    """Base class of every error raised by wayout."""


# --- definition errors: raised while building specs, configs and machines ---


class SpecError(WayoutError):
    """A lifecycle spec breaks a rule; it is refused when it is built."""


class ConfigError(WayoutError, ValueError):
    """A setting has a value the supervisor cannot honour."""


class InvalidTransition(WayoutError):
    """An event arrived that the object's lifecycle does not allow in its state.

    This is never silently ignored: it means the caller (or a child process)
    broke the protocol, and the state machines would otherwise drift from the
    truth.
    """

    def __init__(self, kind: str, ident: object, state: str, event: str) -> None:
        self.kind = kind
        self.ident = ident
        self.state = state
        self.event = event
        super().__init__(
            f"{kind} {ident}: event {event!r} is not allowed in state {state!r}"
        )


# --- job outcomes: how a job that did not return a value ended ---


class JobError(WayoutError):
    """A job did not produce a value. ``job_id`` names it when known."""

    def __init__(self, message: str, *, job_id: int | None = None) -> None:
        self.job_id = job_id
        super().__init__(message)


class NoCapacity(JobError):
    """No ready child could take the job before its queue deadline."""


class JobTimeout(JobError, TimeoutError):
    """The job ran past its own timeout and was cancelled (its child killed if needed).

    Also a ``TimeoutError``, as a timed-out future's is in ``concurrent.futures``.
    """


class JobCancelled(JobError):
    """The job was cancelled by its caller."""


class ChildDied(JobError):
    """The child running the job died (or was killed) after it had started the job.

    What callers of ``runtime`` get is ``runtime.errors.ChildDied``, a subclass
    that is also a ``concurrent.futures.process.BrokenProcessPool`` (defined
    there: that module does I/O, the core imports none).
    """


class JobFailed(JobError):
    """The job's function raised in the child.

    What ``await`` raises is the job's own exception, unpickled, as an instance
    of a class derived from both its type and ``JobFailed`` (so both ``except
    ValueError`` and ``except JobFailed`` match), with its ``args`` intact and
    the child's traceback as its ``__cause__`` (``runtime.errors.RemoteTraceback``).
    A plain ``JobFailed`` carries the text only: when the exception could not
    be pickled in the child or unpickled here, or is no ``Exception`` (a job's
    ``SystemExit`` or ``KeyboardInterrupt`` must not end the caller).
    ``remote_type``, ``remote_message`` and ``remote_traceback`` are always set.
    """

    def __init__(
        self,
        *args: object,
        job_id: int | None = None,
        remote_type: str = "",
        remote_message: str = "",
        remote_traceback: str = "",
    ) -> None:
        # Any positional arguments, and straight to Exception's: in a class
        # derived from a user's exception and this one, the user's __init__
        # calls super().__init__(*its_args) and lands here.
        self.job_id = job_id
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        Exception.__init__(self, *args)


class PoolClosed(JobError, RuntimeError):
    """The pool is draining or closed: the job was refused or could not finish.

    Also a ``RuntimeError``, which is what ``concurrent.futures`` raises for a
    job submitted after ``shutdown()``.
    """
