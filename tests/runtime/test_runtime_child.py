"""The child side of the protocol, driven by hand over a real socket to a real process."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import child_funcs as cf
import pytest
from runtime_support import METHODS

from runtime import child, protocol

pytestmark = pytest.mark.timeout(30)

CAP = 1 << 20


class ChildUnderTest:
    """A child process whose parent is the test, speaking the protocol directly."""

    def __init__(self, method: str = "fork", target: Callable[..., None] = child.main) -> None:
        context = multiprocessing.get_context(method)
        self.sock, child_sock = socket.socketpair()
        inherited = (self.sock.fileno(),) if method == "fork" else ()
        self.proc: Any = context.Process(  # type: ignore[attr-defined]
            target=target, args=(child_sock, 0, CAP, inherited))
        self.proc.start()
        child_sock.close()
        self.reader = protocol.child_reader(CAP)
        self.pending: deque[object] = deque()

    def send(self, message: protocol.ToChild) -> None:
        self.sock.sendall(protocol.encode(message))

    def recv(self, timeout: float = 10.0) -> object:
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the child")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("the child closed its control socket")
            self.pending.extend(self.reader.feed(data))
        return self.pending.popleft()

    def start(self, initializer: Any = None, *initargs: Any) -> None:
        hello = self.recv()
        assert hello == protocol.Hello(self.proc.pid)
        payload = None if initializer is None else pickle.dumps((initializer, initargs))
        self.send(protocol.Init(payload))
        assert self.recv() == protocol.Ready()

    def job(self, ident: int, fn: Any, *args: Any) -> None:
        self.send(protocol.Job(ident, pickle.dumps((fn, args, {}))))

    def run(self, ident: int, fn: Any, *args: Any) -> object:
        self.job(ident, fn, *args)
        assert self.recv() == protocol.JobAck(ident)
        return self.recv()

    def exit_code(self, timeout: float = 10.0) -> int:
        self.proc.join(timeout)
        assert self.proc.exitcode is not None, "the child did not exit"
        return int(self.proc.exitcode)

    def close(self) -> None:
        self.sock.close()
        self.proc.join(5)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join(5)
        self.proc.close()


@pytest.fixture
def spawn_child() -> Iterator[Callable[..., ChildUnderTest]]:
    made: list[ChildUnderTest] = []

    def make(method: str = "fork", target: Callable[..., None] = child.main) -> ChildUnderTest:
        made.append(ChildUnderTest(method, target))
        return made[-1]

    yield make
    for c in made:
        c.close()


def value(message: object) -> Any:
    assert isinstance(message, protocol.JobDone), message
    return pickle.loads(message.result)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", METHODS)
def test_handshake_job_and_graceful_stop(spawn_child: Any, method: str) -> None:
    c = spawn_child(method)
    c.start(cf.init_ok)
    assert value(c.run(1, cf.add, 2, 3)) == 5
    assert value(c.run(2, cf.read_init_marker)) == "done"
    c.send(protocol.Stop())
    assert c.exit_code() == child.EXIT_STOPPED


def test_coroutine_initializer_and_jobs_share_the_childs_loop(spawn_child: Any) -> None:
    c = spawn_child()
    c.start(cf.async_init)
    assert value(c.run(1, cf.read_init_marker)) == "async"
    assert value(c.run(2, cf.async_add, 1, 2)) == 3


def test_the_ack_is_sent_before_user_code_runs(spawn_child: Any) -> None:
    c = spawn_child()
    c.start()
    c.job(1, cf.die, 9)
    assert c.recv() == protocol.JobAck(1)
    with pytest.raises(EOFError):
        c.recv()
    assert c.exit_code() == 9


def test_a_busy_child_answers_pings(spawn_child: Any) -> None:
    c = spawn_child()
    c.start()
    c.job(1, cf.sleep, 30)
    assert c.recv() == protocol.JobAck(1)
    for _ in range(3):
        c.send(protocol.Ping())
        assert c.recv(timeout=2) == protocol.Pong()


@pytest.mark.parametrize("fn", [cf.sleep, cf.async_sleep])
def test_cancel_interrupts_the_job_then_the_child_exits(spawn_child: Any, fn: Any) -> None:
    c = spawn_child()
    c.start()
    c.job(1, fn, 30)
    assert c.recv() == protocol.JobAck(1)
    c.send(protocol.Cancel(1))
    assert c.recv(timeout=5) == protocol.CancelAck(1)
    assert c.exit_code(timeout=5) == child.EXIT_STOPPED


def _job_that_said_so(spawn_child: Any, tmp_path: Path, fn: Callable[..., Any],
                      args: Callable[[str], tuple[Any, ...]]) -> Any:
    """A child running job 1, ``fn(*args(fifo))``, once the job wrote its byte to ``fifo``
    (the job's own code runs: its ack is on the socket by then)."""
    fifo = tmp_path / "said"
    os.mkfifo(fifo)
    c = spawn_child()
    c.start()
    c.job(1, fn, *args(str(fifo)))
    assert c.recv() == protocol.JobAck(1)
    with open(fifo, "rb") as said:
        assert said.read(1) == b"!"
    return c


def test_a_job_that_swallows_the_cancel_finishes_and_the_child_still_exits(
    spawn_child: Any, tmp_path: Path,
) -> None:
    # The byte comes once the job has blocked the signal.
    c = _job_that_said_so(spawn_child, tmp_path, cf.sleep_ignoring_cancel,
                          lambda fifo: (0.5, fifo))
    c.send(protocol.Cancel(1))
    assert value(c.recv(timeout=5)) == 0.5
    assert c.exit_code(timeout=5) == child.EXIT_STOPPED


def test_a_cancel_turned_into_another_exception_still_reports_the_job_cancelled(
    spawn_child: Any, tmp_path: Path,
) -> None:
    # Once the signal raised in the job, the job ended because it was
    # cancelled, whatever exception came out of it (a fresh clone under load
    # reported a SyntaxError: the cancel landed while unpickling compiled a module).
    c = _job_that_said_so(spawn_child, tmp_path, cf.sleep_converting_cancel,
                          lambda fifo: (fifo, 30))
    c.send(protocol.Cancel(1))
    assert c.recv(timeout=5) == protocol.CancelAck(1)
    assert c.exit_code(timeout=5) == child.EXIT_STOPPED


def test_a_job_error_without_a_cancel_is_still_its_error(spawn_child: Any, tmp_path: Path) -> None:
    c = _job_that_said_so(spawn_child, tmp_path, cf.sleep_converting_cancel,
                          lambda fifo: (fifo, "not a number"))
    reply = c.recv(timeout=5)
    assert isinstance(reply, protocol.JobRaised) and reply.job == 1, reply


def test_stop_while_busy_finishes_the_job_first(spawn_child: Any) -> None:
    c = spawn_child()
    c.start()
    c.job(1, cf.sleep, 0.3)
    assert c.recv() == protocol.JobAck(1)
    c.send(protocol.Stop())
    assert value(c.recv()) == 0.3
    assert c.exit_code() == child.EXIT_STOPPED


def test_the_child_exits_when_its_control_socket_closes_even_mid_job(spawn_child: Any) -> None:
    c = spawn_child()
    c.start()
    c.job(1, cf.sleep, 30)
    assert c.recv() == protocol.JobAck(1)
    c.sock.shutdown(socket.SHUT_RDWR)
    assert c.exit_code(timeout=5) == child.EXIT_CONTROL_CLOSED


@pytest.mark.parametrize(("initializer", "expected"), [
    (cf.init_raises_always, "RuntimeError: initializer always fails"),
    (cf.exit_job, "SystemExit: 3"),
])
def test_an_initializer_failure_is_reported_and_the_child_waits_to_be_stopped(
    spawn_child: Any, initializer: Any, expected: str,
) -> None:
    c = spawn_child()
    assert isinstance(c.recv(), protocol.Hello)
    c.send(protocol.Init(pickle.dumps((initializer, ()))))
    report = c.recv()
    assert isinstance(report, protocol.InitError)
    assert report.reason.startswith(expected)
    assert "Traceback" in report.reason
    # Still there (so its report cannot be overtaken by its exit) and answering.
    c.send(protocol.Ping())
    assert c.recv() == protocol.Pong()
    c.send(protocol.Stop())
    assert c.exit_code() == child.EXIT_STOPPED


def test_job_failures_are_reported_as_text_and_the_child_keeps_working(spawn_child: Any) -> None:
    c = spawn_child()
    c.start()
    raised = c.run(1, cf.boom, "kaput")
    assert isinstance(raised, protocol.JobRaised)
    assert (raised.error_type, raised.message) == ("ValueError", "kaput")
    assert "in boom" in raised.traceback

    exited = c.run(2, cf.exit_job, 3)
    assert isinstance(exited, protocol.JobRaised)
    assert exited.error_type == "SystemExit"

    unpicklable = c.run(3, cf.unpicklable_result)
    assert isinstance(unpicklable, protocol.JobRaised)
    assert "cannot be pickled" in unpicklable.message

    too_big = c.run(4, cf.big_result, CAP)
    assert isinstance(too_big, protocol.JobRaised)
    assert too_big.error_type == "wayout.ResultTooLarge"

    assert value(c.run(5, cf.add, 1, 1)) == 2


class _ImportsAMissingModule:
    """Pickles fine here; unpickling it imports a module that does not exist."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (importlib.import_module, ("wayout_no_such_module",))


def test_a_job_that_cannot_be_unpickled_in_the_child_is_acked_then_fails(
    spawn_child: Any,
) -> None:
    c = spawn_child()
    c.start()
    c.send(protocol.Job(1, pickle.dumps((_ImportsAMissingModule(), (), {}))))
    assert c.recv() == protocol.JobAck(1)
    failed = c.recv()
    assert isinstance(failed, protocol.JobRaised)
    assert failed.error_type == "ModuleNotFoundError"


def test_a_malformed_frame_from_the_parent_ends_the_child(spawn_child: Any) -> None:
    c = spawn_child()
    c.start()
    c.sock.sendall(b"\x00\x00\x00\x03abc")
    assert c.exit_code() == child.EXIT_PROTOCOL_ERROR
