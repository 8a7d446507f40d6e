"""The messages between the parent and a child, and how they are framed.

Every message is a tagged ``msgspec`` struct encoded as MessagePack, sent as
one frame: a 4-byte big-endian length, then the body. A reader refuses a frame
whose body is longer than ``max_message_bytes`` *before* buffering it, so a
child cannot make the parent allocate without bound.

Control messages are plain data, decoded against a closed set of types: the
parent never unpickles anything a child sends except the ``result`` of a
``JobDone`` and the ``exception`` of a ``JobRaised``, and it does so only
when the user awaits that job (in ``runtime.pool.JobHandle``, or the
Executor's result thread), never in the supervisor loop. The pickled
payloads the parent sends (the initializer, a job's function and arguments)
are unpickled by the child, which trusts its parent.

The child-to-parent messages carry the names of the ``fsm.events`` they
become, so the mapping is one to one (``runtime.pool.MESSAGE_EVENTS`` is read
from those names; a test holds every message to it); the one exception is ``LogRecord``,
which is no event at all: the parent re-emits it in its own ``logging``
(``runtime.child_logs``) and the supervisor core never sees it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import msgspec

#: Bytes per recv() on a control socket, both ends. 64 KiB: a larger buffer is
#: mmapped and unmapped by glibc on every call (measured: 14.5 us per send+recv
#: at 256 KiB, 2.3 us at 64 KiB).
RECV_BYTES = 1 << 16

HEADER = struct.Struct(">I")

#: Room for the fields around a payload inside a frame (tag, job id, lengths).
ENVELOPE_BYTES = 64


class ProtocolError(Exception):
    """A frame is oversized or does not decode to a known message."""


# --- parent -> child ----------------------------------------------------------


class Init(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Run the initializer: ``payload`` is pickle of (initializer, initargs), or None.

    ``log_level`` is the lowest level the parent would emit for the child's
    records; the child sets its root logger to it before the initializer runs,
    so that it does not format and send records the parent would drop.
    """

    payload: bytes | None
    log_level: int = 20  # logging.INFO


class Job(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Run a job: ``payload`` is pickle of (fn, args, kwargs)."""

    job: int
    payload: bytes


class Ping(msgspec.Struct, tag=True, array_like=True, frozen=True):
    pass


class Cancel(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Give up ``job`` if it is still running, answer CancelAck, then exit."""

    job: int


class Stop(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """Exit once the current job (if any) is finished."""


ToChild = Init | Job | Ping | Cancel | Stop


# --- child -> parent ----------------------------------------------------------


class Hello(msgspec.Struct, tag=True, array_like=True, frozen=True):
    pid: int


class Ready(msgspec.Struct, tag=True, array_like=True, frozen=True):
    pass


class InitError(msgspec.Struct, tag=True, array_like=True, frozen=True):
    reason: str


class JobAck(msgspec.Struct, tag=True, array_like=True, frozen=True):
    job: int


class JobDone(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """``result`` is the pickled return value: the one pickled payload a child sends."""

    job: int
    result: bytes


class JobRaised(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """The job raised. ``exception`` is the pickled exception, or b"" when it
    could not be pickled; the parent unpickles it only when the user awaits the
    job, as it does a ``JobDone.result``."""

    job: int
    error_type: str
    message: str
    traceback: str
    exception: bytes = b""


class CancelAck(msgspec.Struct, tag=True, array_like=True, frozen=True):
    job: int


class Pong(msgspec.Struct, tag=True, array_like=True, frozen=True):
    pass


class LogRecord(msgspec.Struct, tag=True, array_like=True, frozen=True):
    """One ``logging`` record of the child, formatted there (its ``args`` never cross).

    ``job`` is the job the child was running when the record was made, if any;
    ``exc_text`` the formatted traceback (and stack) it carried, or "".
    """

    level: int
    logger: str
    message: str
    exc_text: str
    job: int | None
    created: float
    pathname: str
    lineno: int
    func: str
    thread: str


FromChild = Hello | Ready | InitError | JobAck | JobDone | JobRaised | CancelAck | Pong | LogRecord


# --- framing --------------------------------------------------------------------

_encoder = msgspec.msgpack.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """One frame: length header and body."""
    buffer = bytearray(HEADER.size)
    _encoder.encode_into(message, buffer, HEADER.size)
    HEADER.pack_into(buffer, 0, len(buffer) - HEADER.size)
    return bytes(buffer)


class FrameReader:
    """Splits a byte stream into decoded messages of one direction.

    Feed it whatever ``recv`` returned; it yields every complete message and
    keeps the rest. Any oversized or undecodable frame raises ``ProtocolError``,
    after which the stream is out of sync and must be abandoned.
    """

    def __init__(self, message_type: object, max_message_bytes: int) -> None:
        self._decoder: msgspec.msgpack.Decoder[object] = msgspec.msgpack.Decoder(message_type)
        self._max = max_message_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not form a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[object]:
        buffer = self._buffer
        buffer += data
        start = 0
        try:
            while len(buffer) - start >= HEADER.size:
                (size,) = HEADER.unpack_from(buffer, start)
                if size > self._max:
                    raise ProtocolError(
                        f"frame of {size} bytes exceeds max_message_bytes={self._max}"
                    )
                end = start + HEADER.size + size
                if len(buffer) < end:
                    break
                body = memoryview(buffer)[start + HEADER.size : end]
                try:
                    message = self._decoder.decode(body)
                except msgspec.DecodeError as exc:  # ValidationError is a subclass
                    raise ProtocolError(f"undecodable message: {exc}") from None
                finally:
                    body.release()
                start = end
                yield message
        finally:
            if start:
                del buffer[:start]


def child_reader(max_message_bytes: int) -> FrameReader:
    """The parent's reader of what a child sends."""
    return FrameReader(FromChild, max_message_bytes)


def parent_reader(max_message_bytes: int) -> FrameReader:
    """The child's reader of what the parent sends."""
    return FrameReader(ToChild, max_message_bytes)
