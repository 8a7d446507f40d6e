"""snapshot(), restore() and clone(): the checker branches from any state through them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from fsm import codec
from fsm import events as ev
from fsm.core import CoreStatus, SupervisorCore

from .script import Script, cfg

CONFIG = cfg(max_children=3, max_jobs_per_child=3, memory_warn_mb=50.0, memory_limit_mb=100.0)

# Times are multiples of 1/4: exact in binary, so shifting them by a constant is exact too.


def busy_script() -> Script:
    """A pool with something in every interesting state."""
    s = Script(CONFIG)
    s.warm(0, 0.25)
    s.feed(ev.Submit(0.5, 1), ev.JobAck(0.5, 0, 1))  # child 0 busy, job 1 running
    s.feed(ev.Spawned(0.75, 1, 101), ev.Hello(0.75, 1))  # child 1 warming
    s.feed(ev.Submit(1.0, 2), ev.Submit(1.0, 3))  # spawns child 2; jobs 2, 3 queued
    s(ev.ChildExited(1.25, 2, None))  # a failure: budget, last_failure, child 3 spawned
    s(ev.MemorySample(1.5, 0, 60.0))  # warned
    s(ev.Cancel(1.75, 3))
    return s


def draining_script() -> Script:
    s = busy_script()
    s.warm(1, 2.0)
    s(ev.Drain(2.25))
    return s


def backing_off_script() -> Script:
    s = Script(cfg(max_children=1, max_restarts=1))
    s(ev.Submit(0.0, 1))
    s(ev.ChildExited(0.25, 0, None))
    s(ev.ChildExited(0.5, 1, None))
    assert s.core.pool_state == "backing_off"
    return s


SCRIPTS: dict[str, Callable[[], Script]] = {
    "fresh": lambda: Script(CONFIG, start=False),
    "started": lambda: Script(CONFIG),
    "busy": busy_script,
    "draining": draining_script,
    "backing_off": backing_off_script,
}


def future(s: Script) -> list[ev.Event]:
    """Events that exercise whatever the snapshot holds, relative to s.now."""
    t = s.now
    out: list[ev.Event] = []
    for c in sorted(s.core.children):
        out += [ev.Spawned(t, c, 200 + c), ev.Hello(t, c), ev.Ready(t, c)]
    for j, rec in sorted(s.core.jobs.items()):
        if rec.child is not None:
            out += [ev.JobAck(t + 0.25, rec.child, j), ev.JobDone(t + 0.5, rec.child, j, j)]
    out += [ev.Submit(t + 0.75, 50), ev.DeadlineReached(t + 30.0), ev.DeadlineReached(t + 70.0),
            ev.Close(t + 71.0), ev.DeadlineReached(t + 100.0)]
    return out


def nameless(status: CoreStatus) -> CoreStatus:
    """The status without its reason text, which names children."""
    return dataclasses.replace(status, reason="")


def shifted(e: ev.Event, by: float) -> ev.Event:
    return dataclasses.replace(e, now=e.now + by)


def unshifted(cmds: list[ev.Command], by: float) -> list[ev.Command]:
    return [dataclasses.replace(c, now=c.now - by) if isinstance(c, ev.Transitioned) else c
            for c in cmds]


@pytest.mark.parametrize("name", SCRIPTS)
def test_restore_round_trips_the_snapshot(name: str) -> None:
    s = SCRIPTS[name]()
    snap = s.core.snapshot()
    hash(snap)
    for now in (s.now, 0.0, 1000.0):
        again = SupervisorCore.restore(s.config, snap, now=now)
        assert again.snapshot() == snap
        assert again.status() == dataclasses.replace(
            s.core.status(),
            next_deadline=None if s.core.next_deadline() is None
            else s.core.next_deadline() - s.now + now)  # type: ignore[operator]
    canonical = s.core.snapshot(canonical=True)
    again = SupervisorCore.restore(s.config, canonical, now=5.0)
    assert again.snapshot(canonical=True) == canonical


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_restored_core_behaves_as_the_original(name: str) -> None:
    s = SCRIPTS[name]()
    restored = SupervisorCore.restore(s.config, s.core.snapshot(), now=s.now)
    for e in future(s):
        assert restored.handle(e) == s.core.handle(e), e
        assert restored.snapshot() == s.core.snapshot()


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_core_restored_at_another_time_behaves_the_same_shifted(name: str) -> None:
    s = SCRIPTS[name]()
    by = 1000.0
    restored = SupervisorCore.restore(s.config, s.core.snapshot(), now=s.now + by)
    assert restored.next_deadline() == (
        None if s.core.next_deadline() is None else s.core.next_deadline() + by  # type: ignore[operator]
    )
    for e in future(s):
        assert unshifted(restored.handle(shifted(e, by)), by) == s.core.handle(e), e
        assert restored.snapshot() == s.core.snapshot()


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_core_restored_from_a_canonical_snapshot_behaves_the_same_up_to_naming(
        name: str) -> None:
    s = SCRIPTS[name]()
    restored = SupervisorCore.restore(s.config, s.core.snapshot(canonical=True), now=s.now)
    original = s.core
    for t in (s.now + 30.0, s.now + 70.0, s.now + 100.0):
        a = original.handle(ev.DeadlineReached(t))
        b = restored.handle(ev.DeadlineReached(t))
        assert [type(c) for c in a] == [type(c) for c in b]
        assert restored.snapshot(canonical=True) == original.snapshot(canonical=True)
        assert nameless(restored.status()) == nameless(original.status())


def test_canonical_snapshots_ignore_child_naming() -> None:
    a = Script(cfg(num_idle=2))
    b = Script(cfg(num_idle=2))
    # The same story, told about different children.
    a.warm(0, 0.25)
    b.warm(1, 0.25)
    a.feed(ev.Spawned(0.5, 1, 555))
    b.feed(ev.Spawned(0.5, 0, 777))
    a.feed(ev.Submit(0.75, 9), ev.JobAck(1.0, 0, 9), ev.BadMessage(1.25, 1, "x"))
    b.feed(ev.Submit(0.75, 9), ev.JobAck(1.0, 1, 9), ev.BadMessage(1.25, 0, "x"))
    assert a.core.snapshot() != b.core.snapshot()
    assert a.core.snapshot(canonical=True) == b.core.snapshot(canonical=True)
    assert nameless(a.core.status()) == nameless(b.core.status())
    # And a difference that is not naming still shows.
    b(ev.Pong(1.5, 1))
    assert a.core.snapshot(canonical=True) != b.core.snapshot(canonical=True)


def test_snapshots_at_different_times_of_the_same_relative_state_are_equal() -> None:
    a = Script(CONFIG, now=0.0)
    b = Script(CONFIG, now=500.0)
    a.warm(0, 0.25)
    b.warm(0, 500.25)
    a(ev.Submit(0.5, 1))
    b(ev.Submit(500.5, 1))
    assert a.core.snapshot() == b.core.snapshot()


def test_clone_is_independent_and_equal() -> None:
    s = busy_script()
    before = s.core.snapshot()
    copy = s.core.clone()
    assert copy.snapshot() == before
    assert copy.status() == s.core.status()
    # Driving the copy leaves the original untouched...
    copy.handle(ev.ChildExited(2.0, 0, -9))
    copy.handle(ev.Close(2.25))
    copy.handle(ev.DeadlineReached(50.0))
    assert s.core.snapshot() == before
    assert s.core.children[0].state == "busy"
    assert s.core.jobs[1].state == "running"
    # ...and the other way round: the copy behaves as the original would have.
    copy2 = s.core.clone()
    for e in future(s):
        assert copy2.handle(e) == s.core.handle(e)
    assert copy2.snapshot() == s.core.snapshot()
    assert copy.snapshot() != s.core.snapshot()


def test_the_codec_names_every_field_of_the_core_as_state_or_not() -> None:
    # A new SupervisorCore field must be written by fsm.codec, or said to be no state.
    names = {f.name for f in dataclasses.fields(SupervisorCore)}
    assert codec.STATE | codec.NOT_STATE == names
    assert not codec.STATE & codec.NOT_STATE


def test_a_new_record_field_is_carried_by_key_decode_copy_and_signature() -> None:
    # One edit: a field declared on a record, with or without a role, is in all of them.
    @dataclasses.dataclass(slots=True)
    class Record:
        ident: int = dataclasses.field(metadata=codec.IDENT)
        state: str = "ready"
        deadline: float | None = dataclasses.field(default=None, metadata=codec.TIME)
        restarts: int = 0  # the new plain field
        note: str = dataclasses.field(default="", metadata=codec.TEXT)

    rc = codec.RecordCodec(Record)
    r = Record(ident=4, state="busy", deadline=3.5, restarts=2, note="why")
    key = rc.key(r, 1.0, True, None, None)
    assert key == ("busy", 2.5, 2, "why")
    assert rc.decode(4, key, 1.0) == r
    assert eval(rc.copy_source.format(v="r"), {"Record": Record, "r": r}) == r
    scope = {"Record": Record, "r": r, "_new": object.__new__}
    exec(rc.copy_lines.format(v="r", r="copy"), scope)
    assert scope["copy"] == r and scope["copy"] is not r
    assert rc.signer("extra")(r, 1.0, None, "x") == ("busy", 2.5, 2, "x")


def test_an_unknown_codec_role_is_refused() -> None:
    @dataclasses.dataclass
    class Record:
        ident: int = dataclasses.field(metadata={codec.ROLE: "colour"})

    with pytest.raises(TypeError, match="colour"):
        codec.RecordCodec(Record)
