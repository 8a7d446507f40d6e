"""Every error a user of ``runtime`` can see, under one base: ``WayoutError``.

The job outcomes are decided by the core and defined in ``fsm.errors``; this
module re-exports them so that users import errors from the package they use.
The errors added here are about the job *as the caller handed it over*,
before the core ever sees it, and about a call from the wrong thread or loop;
``remote_error`` rebuilds a job's own exception in the caller.
"""

from __future__ import annotations

import pickle
import weakref
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fsm.errors import ChildDied as _CoreChildDied
from fsm.errors import (
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


class ChildDied(_CoreChildDied, BrokenProcessPool):
    """The child running the job died (or was killed) after it had started the job.

    Also a ``concurrent.futures.process.BrokenProcessPool``, which is what
    ``ProcessPoolExecutor`` raises for a worker that died; unlike it, only this
    job failed: the pool replaces the child and goes on. The message names the
    signal that ended it (``killed by SIGSEGV``). ``except fsm.errors.ChildDied``
    matches it too: the core decides the outcome, this class delivers it.
    """


class InvalidJob(WayoutError, TypeError):
    """``submit``/``run`` got a job that cannot be sent to a child process.

    Its function or arguments cannot be pickled (a lambda, a closure, a lock,
    an open file...), or the pickled job is larger than ``max_message_bytes``.
    Raised at the call, before anything is queued: the pool is unaffected.
    """


class WrongLoop(WayoutError, RuntimeError):
    """A ``Pool`` method was called from another thread or another event loop.

    A ``Pool`` belongs to the event loop it was started on. From other threads
    (or synchronous code), use ``runtime.Executor``: a
    ``concurrent.futures.Executor`` whose every method is thread-safe.
    """


class RemoteTraceback(Exception):
    """The traceback of a job's exception, as the child formatted it.

    Attached as the ``__cause__`` of the exception ``await`` raises, so that
    it is printed after the caller's own traceback (``ProcessPoolExecutor``
    does the same with its ``_RemoteTraceback``).
    """

    def __init__(self, tb: str) -> None:
        self.tb = tb
        super().__init__(tb)

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


#: original exception class -> its derived class that is also a JobFailed (or
#: InvalidJob); weak, so that a class defined at run time can go away.
_derived: weakref.WeakKeyDictionary[type, dict[type, type]] = weakref.WeakKeyDictionary()


def _derive(cls: type[BaseException], family: type[WayoutError]) -> type[Any] | None:
    """A class that is both ``cls`` and ``family``, or None if Python refuses one."""
    if issubclass(cls, family):
        return cls
    per_class = _derived.get(cls)
    if per_class is None:
        per_class = _derived[cls] = {}
    derived = per_class.get(family)
    if derived is None:
        try:
            derived = type(cls.__name__, (cls, family), {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__reduce__": _reduce_derived,
                "__wayout_original__": cls,
                "__wayout_family__": family,
            })
        except TypeError:  # a final class, or layouts that cannot be combined
            return None
        per_class[family] = derived
    return derived


def _reduce_derived(self: BaseException) -> tuple[Any, ...]:
    cls = type(self)
    original = cls.__wayout_original__  # type: ignore[attr-defined]
    plain = original.__new__(original, *self.args)
    plain.args = self.args
    plain.__dict__.update(self.__dict__)
    return (_rebuild, (plain, cls.__wayout_family__))  # type: ignore[attr-defined]


def _rebuild(original: BaseException, family: type[WayoutError]) -> BaseException:
    made = reraise_as(original, family)
    return made if made is not None else original


def reraise_as(exc: BaseException, family: type[WayoutError],
               **attributes: Any) -> BaseException | None:
    """A copy of ``exc`` whose class derives from both its type and ``family``,
    with ``attributes`` set; None when it cannot be made, or when ``exc`` is no
    ``Exception`` (a ``SystemExit`` must not pass for an ordinary error).

    The copy is made as unpickling makes one, from ``exc.__reduce_ex__``: the
    class called with its arguments, then its state, so that C-level fields
    (an ``OSError``'s ``filename``) survive.
    """
    if not isinstance(exc, Exception):
        return None
    derived = _derive(type(exc), family)
    if derived is None:
        return None
    try:
        reduced = exc.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        if (isinstance(reduced, tuple) and len(reduced) >= 2 and reduced[0] is type(exc)
                and isinstance(reduced[1], tuple)):
            made: BaseException = derived(*reduced[1])
            state = reduced[2] if len(reduced) > 2 else None
            if isinstance(state, dict):
                made.__dict__.update(state)
        else:
            made = derived.__new__(derived, *exc.args)
            made.args = exc.args
            made.__dict__.update(getattr(exc, "__dict__", {}))
        made.__dict__.update(attributes)
    except Exception:
        return None
    return made


def remote_error(
    pickled: bytes,
    *,
    message: str,
    job_id: int | None,
    remote_type: str,
    remote_message: str,
    remote_traceback: str,
) -> BaseException:
    """The exception a job raised in its child, as ``await`` raises it (see ``JobFailed``)."""
    attributes = {"job_id": job_id, "remote_type": remote_type,
                  "remote_message": remote_message, "remote_traceback": remote_traceback}
    original: BaseException | None = None
    if pickled:
        try:
            original = pickle.loads(pickled)
        except BaseException:
            original = None
        if not isinstance(original, BaseException):
            original = None
    made = reraise_as(original, JobFailed, **attributes) if original is not None else None
    if made is None:
        made = JobFailed(message, job_id=job_id, remote_type=remote_type,
                         remote_message=remote_message, remote_traceback=remote_traceback)
    made.__cause__ = RemoteTraceback(remote_traceback) if remote_traceback else None
    return made


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
    "RemoteTraceback",
    "SpecError",
    "WayoutError",
    "WrongLoop",
]
