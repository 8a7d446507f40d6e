"""Logging across the process boundary: a child's records end in the parent's ``logging``.

In the child, ``ForwardingHandler`` sits on the root logger and turns every
record into a ``protocol.LogRecord`` sent over the control socket: the message
is formatted there (its ``args`` may not be picklable, and the parent never
unpickles what a child sends), the traceback too, and the job the child was
running is attached.

In the parent, ``reemit`` hands each such record to the logger
``wayout.child.<name>`` (``wayout.child`` for the child's root logger), as if it
had been logged there, with the extra attributes ``child_id``, ``pid`` and
``job_id``, the child's own time stamp, source location, process and thread
name. Configure those loggers like any other: ``logging.getLogger("wayout.child")``
sets the level and handlers of everything children log. The parent tells each
child that logger's effective level when it initialises (``Init.log_level``),
so a child does not send what the parent would drop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from runtime import protocol

#: The parent's logger under which every child record is re-emitted.
PREFIX = "wayout.child"

# Logger names made from what children sent, so that a child cannot make the
# parent create loggers without bound (each logging.getLogger lives forever).
_MAX_LOGGER_NAMES = 1000
_MAX_NAME_CHARS = 200
_known_names: set[str] = set()


def forward_level() -> int:
    """The lowest level the parent emits for child records (for ``Init.log_level``)."""
    return logging.getLogger(PREFIX).getEffectiveLevel()


# --- child side -------------------------------------------------------------------


class ForwardingHandler(logging.Handler):
    """Sends each record to the parent; ``send`` must be thread-safe."""

    def __init__(
        self,
        send: Callable[[protocol.LogRecord], None],
        current_job: Callable[[], int | None],
        clip: Callable[[str], str],
    ) -> None:
        super().__init__()
        self._send_record = send
        self._current_job = current_job
        self._clip = clip
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = []
            if record.exc_info:
                parts.append(self._formatter.formatException(record.exc_info))
            elif record.exc_text:
                parts.append(record.exc_text)
            if record.stack_info:
                parts.append(self._formatter.formatStack(record.stack_info))
            # Every field bounded: a record too large for one frame would get
            # the child killed for breaking the protocol.
            message = protocol.LogRecord(
                level=record.levelno,
                logger=record.name[:_MAX_NAME_CHARS],
                message=self._clip(record.getMessage()),
                exc_text=self._clip("\n".join(parts)),
                job=self._current_job(),
                created=record.created,
                pathname=(record.pathname or "")[-_MAX_NAME_CHARS:],
                lineno=record.lineno or 0,
                func=(record.funcName or "")[:_MAX_NAME_CHARS],
                thread=(record.threadName or "")[:_MAX_NAME_CHARS],
            )
        except Exception:
            self.handleError(record)
            return
        self._send_record(message)


def install(handler: ForwardingHandler) -> None:
    """Make ``handler`` the child's only root handler.

    A forked child inherits the parent's handlers; left in place they would
    write the child's records a second time, straight into the parent's files
    and streams (interleaved with the parent's own writes).
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def log_uncaught_thread_exception(args: object) -> None:
    """``threading.excepthook`` of a child: the traceback goes to the parent's logging."""
    exc_type = getattr(args, "exc_type", None)
    if exc_type is SystemExit:  # as the default hook: a thread may end itself this way
        return
    thread = getattr(args, "thread", None)
    name = getattr(thread, "name", "?")
    exc_value = getattr(args, "exc_value", None)
    exc_tb = getattr(args, "exc_traceback", None)
    logging.getLogger().error(
        "uncaught exception in thread %s of a wayout child", name,
        exc_info=(exc_type, exc_value, exc_tb) if exc_type is not None else None,
    )


# --- parent side --------------------------------------------------------------------


def _logger_name(child_logger: str) -> str:
    if child_logger in ("", "root"):
        return PREFIX
    name = f"{PREFIX}.{child_logger[:_MAX_NAME_CHARS]}"
    if name not in _known_names:
        if len(_known_names) >= _MAX_LOGGER_NAMES:
            return PREFIX
        _known_names.add(name)
    return name


def reemit(message: protocol.LogRecord, child_id: int, pid: int | None) -> None:
    """Log a child's record in the parent, under ``wayout.child.<its logger>``."""
    name = _logger_name(message.logger)
    logger = logging.getLogger(name)
    if not logger.isEnabledFor(message.level):
        return
    record = logger.makeRecord(
        name, message.level, message.pathname, message.lineno, message.message, (), None,
        func=message.func or None,
        extra={"child_id": child_id, "pid": pid, "job_id": message.job},
    )
    # The record tells when and where it was made: in the child.
    record.relativeCreated += (message.created - record.created) * 1000
    record.created = message.created
    record.msecs = (message.created - int(message.created)) * 1000
    record.process = pid
    record.processName = f"wayout-child-{child_id}"
    record.threadName = message.thread
    record.thread = 0  # a thread of another process: its id would mean nothing here
    record.exc_text = message.exc_text or None
    logger.handle(record)
