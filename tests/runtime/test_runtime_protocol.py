"""Framing and typed messages: what the parent accepts from a child, and what it refuses."""

from __future__ import annotations

from dataclasses import fields
from typing import get_args

import msgspec
import pytest

from fsm import events as ev
from runtime import protocol
from runtime.pool import MESSAGE_EVENTS, Pool

FROM_CHILD = [
    protocol.Hello(1234),
    protocol.Ready(),
    protocol.InitError("RuntimeError: no"),
    protocol.JobAck(7),
    protocol.JobDone(7, b"\x80\x05K\x03."),
    protocol.JobRaised(7, "ValueError", "boom", "Traceback..."),
    protocol.CancelAck(7),
    protocol.Pong(),
]
TO_CHILD = [
    protocol.Init(None),
    protocol.Init(b"payload"),
    protocol.Job(3, b"payload"),
    protocol.Ping(),
    protocol.Cancel(3),
    protocol.Stop(),
]


def test_every_message_round_trips_even_when_split_at_every_byte() -> None:
    stream = b"".join(protocol.encode(m) for m in FROM_CHILD)
    for cut in range(len(stream) + 1):
        reader = protocol.child_reader(1 << 20)
        got = list(reader.feed(stream[:cut])) + list(reader.feed(stream[cut:]))
        assert got == FROM_CHILD, cut
        assert reader.pending == 0


def test_parent_messages_round_trip_byte_by_byte() -> None:
    reader = protocol.parent_reader(1 << 20)
    got: list[object] = []
    for byte in b"".join(protocol.encode(m) for m in TO_CHILD):
        got.extend(reader.feed(bytes([byte])))
    assert got == TO_CHILD


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    reader = protocol.child_reader(1024)
    with pytest.raises(protocol.ProtocolError, match="exceeds max_message_bytes=1024"):
        list(reader.feed((1025).to_bytes(4, "big")))


def test_a_frame_at_the_cap_is_accepted() -> None:
    message = protocol.JobDone(1, b"x" * 1000)
    frame = protocol.encode(message)
    body = len(frame) - protocol.HEADER.size
    assert list(protocol.child_reader(body).feed(frame)) == [message]
    with pytest.raises(protocol.ProtocolError):
        list(protocol.child_reader(body - 1).feed(frame))


@pytest.mark.parametrize("body", [
    b"abc",                                          # not msgpack of a message
    msgspec.msgpack.encode(["Nope", 1]),             # unknown tag
    msgspec.msgpack.encode(["JobAck", "seven"]),     # wrong field type
    msgspec.msgpack.encode({"pickle": b"\x80"}),     # not an array-like struct
])
def test_malformed_messages_are_refused(body: bytes) -> None:
    frame = len(body).to_bytes(4, "big") + body
    with pytest.raises(protocol.ProtocolError, match="undecodable"):
        list(protocol.child_reader(1 << 20).feed(frame))


def test_a_child_cannot_send_parent_only_messages() -> None:
    # A Job from a child would be decoded by nobody: the parent's reader knows
    # only child-to-parent messages.
    with pytest.raises(protocol.ProtocolError):
        list(protocol.child_reader(1 << 20).feed(protocol.encode(protocol.Job(1, b"x"))))


def test_messages_after_a_complete_one_wait_for_their_rest() -> None:
    reader = protocol.child_reader(1 << 20)
    first, second = protocol.encode(protocol.Pong()), protocol.encode(protocol.JobAck(2))
    assert list(reader.feed(first + second[:3])) == [protocol.Pong()]
    assert reader.pending == 3
    assert list(reader.feed(second[3:])) == [protocol.JobAck(2)]


def test_every_child_message_but_log_record_becomes_the_event_of_its_name() -> None:
    kinds = set(get_args(protocol.FromChild)) - {protocol.LogRecord}
    assert set(MESSAGE_EVENTS) == kinds
    assert {type(m) for m in FROM_CHILD} == kinds
    pool = Pool()
    for message in FROM_CHILD:
        pool._on_child_message(3, message)
        event_type, posted = pool._inbox.pop()
        event = event_type(now=0.0, **posted)
        assert type(event).__name__ == type(message).__name__
        carried = dict(posted)
        assert carried.pop("child") == 3
        # Every field of the event comes from the message; only Hello's pid stays behind.
        assert set(carried) == {f.name for f in fields(event)} - {"now", "child"}
        assert {n: getattr(event, n) for n in carried} == {n: getattr(message, n) for n in carried}
        left = set(message.__struct_fields__) - set(carried)
        assert left == ({"pid"} if isinstance(message, protocol.Hello) else set()), message


def test_a_message_that_is_no_event_is_a_bad_message() -> None:
    pool = Pool()
    record = protocol.LogRecord(20, "x", "m", "", None, 0.0, "p", 1, "f", "t")
    pool._on_child_message(3, record)
    assert pool._inbox.pop() == (ev.BadMessage, {"child": 3, "reason": "unexpected LogRecord"})
