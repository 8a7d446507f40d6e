"""Faults injected into real child processes, at a chosen stage.

Children import this module by name (under spawn and forkserver they unpickle
``fault_funcs.fault_main`` and the job functions), so everything here is a
module-level function or class.

``fault_main(stage, fault, token_dir)`` (bound with ``functools.partial``) is
the child's entry point: it remembers the control socket (so that user code
can write garbage on it), patches the child's send path for the ``ack`` and
``pong`` stages, runs the real ``runtime.child.main``, and injects the
``stop`` fault once that returns (the child was asked to stop and is about to
exit). Faults at the other stages are carried by the initializer or the job.

Faults at the initializer, ack, pong and stop stages fire in ONE process
only: the first to claim ``token_dir/token``. The token records the child id
and pid, so a test knows which child it hit and that the fault really fired.
"""

from __future__ import annotations

import faulthandler
import functools
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime import child, protocol

STAGES = ("initializer", "job_unpickle", "job_run", "result_pickle", "result_unpickle",
          "ack", "pong", "stop")
FAULTS = ("exception", "exit", "sigkill", "segfault", "hang", "garbage", "oversized")

#: The exit code of the ``exit`` fault.
EXIT_CODE = 7
#: Bytes that frame a message msgspec cannot decode.
GARBAGE = b"\x00\x00\x00\x03abc"

# Set in the child by fault_main.
_control: socket.socket | None = None
_child_id: int | None = None
_max_message_bytes: int = 0


class InjectedFault(RuntimeError):
    """The exception of the ``exception`` fault."""


# --- the faults ---------------------------------------------------------------------


def claim(token_dir: str | None) -> bool:
    """True in exactly one process per token_dir (always True without one)."""
    if token_dir is None:
        return True
    try:
        fd = os.open(Path(token_dir) / "token", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, f"{_child_id} {os.getpid()}".encode())
    os.close(fd)
    return True


def read_token(token_dir: str | Path) -> tuple[int, int] | None:
    """(child id, pid) of the process the fault fired in, or None if it did not fire."""
    path = Path(token_dir) / "token"
    if not path.exists():
        return None
    child_id, pid = path.read_text().split()
    return int(child_id), int(pid)


def inject(fault: str, where: str) -> None:
    """Do ``fault`` here and now. Returns only for faults that do not end the process."""
    if fault == "exception":
        raise InjectedFault(f"injected fault at {where}")
    if fault == "exit":
        os._exit(EXIT_CODE)
    if fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "segfault":
        # No core file, and no faulthandler dump inherited from pytest: just the signal.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        faulthandler.disable()
        faulthandler._sigsegv()
    if fault == "hang":
        hang()
    if fault in ("garbage", "oversized"):
        write_raw(GARBAGE if fault == "garbage"
                  else (_max_message_bytes + 1).to_bytes(4, "big"))
        # Stay: the parent must kill us for what we wrote, not see us exit.
        hang()
    raise ValueError(f"unknown fault {fault!r}")


def hang() -> None:
    while True:
        time.sleep(3600)


def write_raw(data: bytes) -> None:
    assert _control is not None, "fault_main must be the child's entry point"
    _control.sendall(data)


# --- the child's entry point ----------------------------------------------------------


def fault_main(
    stage: str | None,
    fault: str | None,
    token_dir: str | None,
    sock: socket.socket,
    child_id: int,
    max_message_bytes: int,
    inherited_fds: tuple[int, ...] = (),
) -> None:
    global _control, _child_id, _max_message_bytes
    _control, _child_id, _max_message_bytes = sock, child_id, max_message_bytes
    if stage in ("ack", "pong"):
        assert fault is not None
        _patch_send(stage, fault, token_dir)
    child.main(sock, child_id, max_message_bytes, inherited_fds)
    if stage == "stop" and fault is not None and claim(token_dir):
        inject(fault, "stop")


def entry(stage: str | None = None, fault: str | None = None,
          token_dir: str | None = None) -> Callable[..., None]:
    """The ``child_main`` for a pool whose children may fault at ``stage``."""
    return functools.partial(fault_main, stage, fault, token_dir)


def _patch_send(stage: str, fault: str, token_dir: str | None) -> None:
    original = child._Child._send

    def send(self: Any, message: protocol.FromChild) -> None:
        if stage == "ack":
            due = isinstance(message, protocol.JobAck)
        else:  # a pong while a job runs, so that the fault has a job to hit
            due = isinstance(message, protocol.Pong) and self._current is not None
        if due and claim(token_dir):
            inject(fault, stage)
        original(self, message)

    child._Child._send = send  # type: ignore[method-assign]


# --- initializers ---------------------------------------------------------------------------


def init_fault(fault: str, token_dir: str) -> None:
    if claim(token_dir):
        inject(fault, "initializer")


# --- jobs -------------------------------------------------------------------------------------


def add(a: int, b: int) -> int:
    return a + b


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def run_fault(fault: str, token_dir: str) -> None:
    if claim(token_dir):
        inject(fault, "job_run")


def _fault_on_load(fault: str, token_dir: str) -> None:
    if claim(token_dir):
        inject(fault, "job_unpickle")


class FaultOnUnpickle:
    """An argument whose unpickling (in the child) injects the fault."""

    def __init__(self, fault: str, token_dir: str) -> None:
        self.fault = fault
        self.token_dir = token_dir

    def __reduce__(self) -> tuple[Any, ...]:
        return (_fault_on_load, (self.fault, self.token_dir))


def echo(value: object) -> object:
    return value


class FaultOnPickle:
    """A return value whose pickling (in the child) injects the fault."""

    def __init__(self, fault: str, token_dir: str) -> None:
        self.fault = fault
        self.token_dir = token_dir

    def __reduce__(self) -> tuple[Any, ...]:
        if claim(self.token_dir):
            inject(self.fault, "result_pickle")
        return (FaultOnPickle, (self.fault, self.token_dir))


def return_fault_on_pickle(fault: str, token_dir: str) -> FaultOnPickle:
    return FaultOnPickle(fault, token_dir)


def return_oversized(token_dir: str) -> bytes:
    """A result larger than the frame cap (what the oversized fault is for a result)."""
    claim(token_dir)
    return b"x" * (_max_message_bytes + 1)


def _raise_in_parent(message: str) -> None:
    raise InjectedFault(message)


class RaisesOnUnpickle:
    """Pickles fine in the child; unpickling it (in the parent) raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_raise_in_parent, ("injected fault at result_unpickle",))


def return_raises_on_unpickle() -> RaisesOnUnpickle:
    return RaisesOnUnpickle()
