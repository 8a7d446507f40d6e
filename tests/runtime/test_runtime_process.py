"""ChildProcess: start, messages, death seen as an event, kill, descriptors."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Callable
from typing import Any

import child_funcs as cf
import pytest
from runtime_support import METHODS, pool_test, within

from runtime import child, protocol
from runtime.process import ChildProcess

pytestmark = pytest.mark.timeout(30)


class Watched:
    """A ChildProcess whose callbacks land in one queue, in order."""

    def __init__(self, target: Callable[..., None] = child.main, method: str = "fork",
                 cap: int = 1 << 20, ident: int = 0) -> None:
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.proc = ChildProcess(
            ident, start_method=method, target=target, max_message_bytes=cap,
            on_message=lambda _c, m: self.events.put_nowait(("message", m)),
            on_bad_stream=lambda _c, r: self.events.put_nowait(("bad", r)),
            on_exit=lambda _c, code: self.events.put_nowait(("exit", code)),
        )
        self.pid = self.proc.start()

    async def next(self, seconds: float = 10.0) -> tuple[str, Any]:
        return await within(seconds, self.events.get())

    async def started(self) -> None:
        assert await self.next() == ("message", protocol.Hello(self.pid))
        self.proc.send(protocol.Init(None))
        assert await self.next() == ("message", protocol.Ready())


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_an_external_sigkill_is_seen_as_an_exit_event(method: str) -> None:
    w = Watched(method=method)
    await w.started()
    os.kill(w.pid, signal.SIGKILL)
    assert await w.next(seconds=2) == ("exit", -signal.SIGKILL)
    assert not w.proc.alive


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_kill_is_sigkill_and_is_reaped(method: str) -> None:
    w = Watched(method=method)
    await w.started()
    w.proc.kill()
    assert await w.next(seconds=2) == ("exit", -signal.SIGKILL)
    w.proc.kill()  # a second kill of a reaped child is harmless
    w.proc.send(protocol.Ping())  # and so is a send


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_a_graceful_stop_reports_exit_code_zero(method: str) -> None:
    w = Watched(method=method)
    await w.started()
    w.proc.send(protocol.Stop())
    assert await w.next() == ("exit", 0)


@pool_test
async def test_every_message_sent_before_death_arrives_before_the_exit() -> None:
    w = Watched(target=cf.main_floods_then_dies)
    got = [await w.next() for _ in range(1001)]
    assert got[:-1] == [("message", protocol.JobAck(i)) for i in range(1000)]
    assert got[-1] == ("exit", 0)


@pool_test
async def test_an_oversized_frame_is_a_bad_stream_not_a_parent_crash() -> None:
    w = Watched(target=cf.main_sends_oversized, cap=4096)
    kind, reason = await w.next()
    assert kind == "bad"
    assert "exceeds max_message_bytes=4096" in reason
    w.proc.kill()
    assert await w.next() == ("exit", -signal.SIGKILL)


@pool_test
async def test_a_large_job_and_result_cross_the_socket_intact() -> None:
    # Bigger than a socket buffer: the parent's write is finished by add_writer.
    w = Watched(cap=64 << 20)
    await w.started()
    blob = os.urandom(8 << 20)
    w.proc.send(protocol.Job(1, pickle.dumps((cf.echo, (blob,), {}))))
    assert await w.next() == ("message", protocol.JobAck(1))
    kind, done = await w.next()
    assert kind == "message" and isinstance(done, protocol.JobDone)
    assert pickle.loads(done.result) == blob
    w.proc.kill()
    assert (await w.next())[0] == "exit"


@pool_test
async def test_memory_is_measured_while_alive_and_not_after_the_reap() -> None:
    w = Watched()
    await w.started()
    mb = w.proc.memory_mb()
    assert mb is not None and 1 < mb < 1024
    w.proc.kill()
    await w.next()
    assert w.proc.memory_mb() is None


def _socket_inode(pid: int | str, fd: int) -> str:
    return os.readlink(f"/proc/{pid}/fd/{fd}")


@pool_test
async def test_a_forked_child_holds_no_parent_end_of_any_control_socket() -> None:
    first = Watched(ident=0)
    second = Watched(ident=1)
    await first.started()
    await second.started()
    assert first.proc._sock is not None and second.proc._sock is not None
    parent_ends = {_socket_inode("self", s.fileno()) for s in (first.proc._sock, second.proc._sock)}
    for w in (first, second):
        held = {os.readlink(f"/proc/{w.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{w.pid}/fd")}
        assert not parent_ends & held, f"child {w.pid} holds a parent end"
    for w in (first, second):
        w.proc.kill()
        assert (await w.next())[0] == "exit"


@pool_test
async def test_kill_and_reap_now_leaves_nothing_behind() -> None:
    w = Watched()
    await w.started()
    assert w.proc.kill_and_reap_now(timeout=5.0)
    assert w.proc.exit_code == -signal.SIGKILL
    assert w.events.empty()  # the last resort reports nothing: nobody listens any more
