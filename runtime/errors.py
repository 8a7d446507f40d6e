"""Every error a user of ``runtime`` can see, under one base: ``WayoutError``.

The job outcomes are decided by the core and defined in ``fsm.errors``; this
module re-exports them so that users import errors from the package they use.
The one error added here is about the job *as the caller handed it over*,
before the core ever sees it.
"""

from __future__ import annotations

from fsm.errors import (
    ChildDied,
    ConfigError,
    InvalidTransition,
    JobCancelled,
    JobError,
    JobFailed,
    JobTimeout,
    NoCapacity,
    PoolClosed,
    SpecError,
    WayoutError,
)


class InvalidJob(WayoutError, TypeError):
    """``submit``/``run`` got a job that cannot be sent to a child process.

    Its function or arguments cannot be pickled (a lambda, a closure, a lock,
    an open file...), or the pickled job is larger than ``max_message_bytes``.
    Raised at the call, before anything is queued: the pool is unaffected.
    """


__all__ = [
    "ChildDied",
    "ConfigError",
    "InvalidJob",
    "InvalidTransition",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "NoCapacity",
    "PoolClosed",
    "SpecError",
    "WayoutError",
]
