"""Functions the tests run inside child processes.

They live in their own module so that every start method can import them by
name in the child (spawn and forkserver children unpickle ``child_funcs.add``
by importing this module; the test directory is on their ``sys.path``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runtime import child
from runtime.tools.demo.workload import hog


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def exit_job(code: int = 3) -> None:
    raise SystemExit(code)


def die(code: int = 1) -> None:
    os._exit(code)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def async_sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def sleep_ignoring_cancel(seconds: float, blocked_fifo: str | None = None) -> float:
    """A job that cannot be interrupted: it blocks the cancel signal, and leaves
    it blocked (restoring it would deliver the pending cancel right here).
    With ``blocked_fifo``, it writes one byte there once the signal is blocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {child.CANCEL_SIGNAL})
    if blocked_fifo is not None:
        with open(blocked_fifo, "wb") as fifo:
            fifo.write(b"!")
    time.sleep(seconds)
    return seconds


def sleep_converting_cancel(started_fifo: str, seconds: float) -> float:
    """A job whose handler turns whatever interrupts it into an error of its own,
    as C code may (the parser reports a cancel landing in an import it compiles
    as a SyntaxError). It writes one byte to ``started_fifo`` as it begins."""
    with open(started_fifo, "wb") as fifo:
        fifo.write(b"!")
    try:
        time.sleep(seconds)
    except BaseException as exc:
        raise ValueError("interrupted") from exc
    return seconds


def say_started_then_sleep(started_fifo: str, seconds: float) -> float:
    """A job that writes one byte to ``started_fifo`` as its user code begins
    (its ack is on the socket by then), then sleeps."""
    with open(started_fifo, "wb") as fifo:
        fifo.write(b"!")
    time.sleep(seconds)
    return seconds


def unpicklable_result() -> Any:
    return threading.Lock()


def big_result(size: int) -> bytes:
    return b"x" * size


def echo(value: Any) -> Any:
    return value


class Token:
    """A value that can be weakly referenced (to see when the parent frees it)."""

    def __init__(self, n: int) -> None:
        self.n = n


def token(n: int) -> Token:
    return Token(n)


def _current_thread_name() -> str:
    return threading.current_thread().name


def wait_then_raise(go_fifo: str) -> None:
    """Wait for one byte on ``go_fifo``, then raise ``AppError``."""
    with open(go_fifo, "rb") as fifo:
        fifo.read()
    raise AppError(7, "after go")


class NamesItsUnpickler:
    """Unpickles as the name of the thread that unpickled it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_current_thread_name, ())


def unpickled_where(go_fifo: str | None = None) -> NamesItsUnpickler:
    """(After one byte on ``go_fifo``, if given.)"""
    if go_fifo is not None:
        with open(go_fifo, "rb") as fifo:
            fifo.read()
    return NamesItsUnpickler()


# --- initializers ----------------------------------------------------------------


def init_ok() -> None:
    os.environ["WAYOUT_TEST_INIT"] = "done"


async def async_init() -> None:
    await asyncio.sleep(0)
    os.environ["WAYOUT_TEST_INIT"] = "async"


def read_init_marker() -> str:
    return os.environ.get("WAYOUT_TEST_INIT", "")


def _first(token_dir: str) -> bool:
    """True in exactly one process: the first to create the token file."""
    try:
        fd = os.open(Path(token_dir) / "token", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def init_raises_once(token_dir: str) -> None:
    if _first(token_dir):
        raise RuntimeError("initializer failed on purpose")


def init_raises_always() -> None:
    raise RuntimeError("initializer always fails")


def init_system_exit_once(token_dir: str) -> None:
    if _first(token_dir):
        raise SystemExit(4)


def init_exits_once(token_dir: str) -> None:
    if _first(token_dir):
        os._exit(5)


def init_hangs_once(token_dir: str) -> None:
    if _first(token_dir):
        time.sleep(3600)


def init_hangs_always() -> None:
    time.sleep(3600)


def init_blocks_exit() -> None:
    """A non-daemon thread that never ends: the child cannot exit gracefully."""
    threading.Thread(target=time.sleep, args=(3600,), daemon=False).start()


# --- child entry points for fault injection ----------------------------------------


def main_dies_before_hello_once(
    sock: socket.socket, child_id: int, max_message_bytes: int, inherited_fds: tuple[int, ...]
) -> None:
    """Child 0 dies before its hello; the others behave."""
    if child_id == 0:
        os._exit(7)
    child.main(sock, child_id, max_message_bytes, inherited_fds)


def main_hangs_before_hello(
    sock: socket.socket, child_id: int, max_message_bytes: int, inherited_fds: tuple[int, ...]
) -> None:
    time.sleep(3600)


def main_sends_garbage(
    sock: socket.socket, child_id: int, max_message_bytes: int, inherited_fds: tuple[int, ...]
) -> None:
    """Child 0 sends a frame that is not a message; the others behave."""
    if child_id == 0:
        sock.sendall(b"\x00\x00\x00\x03abc")
        time.sleep(3600)
    child.main(sock, child_id, max_message_bytes, inherited_fds)


def main_sends_oversized(
    sock: socket.socket, child_id: int, max_message_bytes: int, inherited_fds: tuple[int, ...]
) -> None:
    """Child 0 announces a frame larger than the cap; the others behave."""
    if child_id == 0:
        sock.sendall((max_message_bytes + 1).to_bytes(4, "big"))
        time.sleep(3600)
    child.main(sock, child_id, max_message_bytes, inherited_fds)


def main_floods_then_dies(
    sock: socket.socket, child_id: int, max_message_bytes: int, inherited_fds: tuple[int, ...]
) -> None:
    """Sends a burst of messages and dies at once: none may be lost or come after the exit."""
    from runtime import protocol

    sock.sendall(b"".join(protocol.encode(protocol.JobAck(i)) for i in range(1000)))
    os._exit(0)


# --- output, logs and memory (tests/runtime/test_runtime_logs.py, _health.py) -------


def log(message: str, level: int = logging.WARNING, logger: str = "wayout_test") -> int:
    logging.getLogger(logger).log(level, message)
    return os.getpid()


def log_exception(message: str) -> int:
    try:
        raise ValueError(message)
    except ValueError:
        logging.getLogger("wayout_test").exception("caught: %s", message)
    return os.getpid()


def thread_raises(message: str) -> int:
    """An exception nobody catches, in a thread of the job's."""
    thread = threading.Thread(target=boom, args=(message,), name="doomed")
    thread.start()
    thread.join()
    return os.getpid()


def print_both(text: str) -> int:
    print(f"{text} on stdout")
    print(f"{text} on stderr", file=sys.stderr)
    return os.getpid()


def init_logs() -> None:
    logging.getLogger("wayout_test.init").warning("initializer says hello")


#: Allocate megabytes and write every page (untouched pages use no memory).
hold_memory = hog


def root_log_level() -> int:
    return logging.getLogger().level


def print_then_die(text: str) -> None:
    """Print a line, then die at once: no exit handler flushes anything."""
    print(text)
    os.kill(os.getpid(), signal.SIGKILL)


def grandchild_signal_dispositions() -> str:
    """What a process started by a job finds for SIGINT and SIGTERM."""
    import subprocess

    code = "import signal; print(signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def own_signal_dispositions() -> str:
    return f"{signal.getsignal(signal.SIGINT)!r} {signal.getsignal(signal.SIGTERM)!r}"


def blocked_signals() -> list[int]:
    """The signals blocked on the calling thread (the child's main thread, in a job)."""
    return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def log_wide(times: int) -> int:
    """Log an exception where every name and text is long and made of 4-byte characters."""
    wide = "\N{GRINNING FACE}" * times

    def emit() -> None:
        try:
            raise ValueError(wide)
        except ValueError:
            logging.getLogger(wide).exception("caught: %s", wide)

    thread = threading.Thread(target=emit, name=wide)
    thread.start()
    thread.join()
    return os.getpid()


#: A process that ignores SIGTERM and sleeps; it prints its pid first.
_STUBBORN = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
             "print(os.getpid(), flush=True); time.sleep(3600)")
#: Starts a stubborn process in a session of its own, prints its pid, exits: a daemon.
_DOUBLE_FORK = (
    "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
    "start_new_session=True, stdout=subprocess.PIPE, text=True); "
    "print(p.stdout.readline().strip(), flush=True)")


def start_descendants(pids_fifo: str, then: str = "return", megabytes: int = 0) -> list[int]:
    """Start three grandchildren that would outlive a plain kill of this child.

    One in the child's process group that ignores SIGTERM; one that left the
    group (``setsid``) and ignores SIGTERM; one daemonised (its parent exited,
    so it is reparented, and it is in a session of its own). Writes their pids
    to ``pids_fifo``, one line, then: returns them (``return``), blocks the
    cancel signal and sleeps (``ignore_cancel``), holds ``megabytes`` of memory
    (``hold_memory``), or stops this process (``stop``, so it answers no ping).
    """
    import subprocess

    def start(code: list[str], **kwargs: Any) -> int:
        proc = subprocess.Popen([sys.executable, "-c", *code], stdout=subprocess.PIPE,
                                text=True, **kwargs)
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        proc.stdout.close()
        return pid

    pids = [start([_STUBBORN]), start([_STUBBORN], start_new_session=True)]
    daemon_parent = subprocess.Popen([sys.executable, "-c", _DOUBLE_FORK, _STUBBORN],
                                     stdout=subprocess.PIPE, text=True)
    out, _ = daemon_parent.communicate()
    pids.append(int(out))  # its parent has exited: it is an orphan now
    if then == "ignore_cancel":
        signal.pthread_sigmask(signal.SIG_BLOCK, {child.CANCEL_SIGNAL})
    with open(pids_fifo, "w") as fifo:
        fifo.write(" ".join(map(str, pids)) + "\n")
    if then == "ignore_cancel":
        time.sleep(3600)
    elif then == "hold_memory":
        hold_memory(megabytes, 3600)
    elif then == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
    return pids


# --- keyword arguments and exceptions that keep their type (issue 16) ---------


def kw(a: int, *, b: int = 0, timeout: float | None = None) -> tuple[int, int, float | None]:
    return (a, b, timeout)


class AppError(Exception):
    """An exception of the user's own, with args and an attribute."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code


def raise_app_error(code: int, text: str) -> None:
    raise AppError(code, text)


def raise_os_error() -> None:
    raise FileNotFoundError(2, "no such file", "/nowhere")


class _StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ raised")


def raise_unprintable() -> None:
    raise _StrRaises("x")


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("this exception refuses pickling")


def raise_unpicklable() -> None:
    raise _Unpicklable("cannot travel")


class ExitsOnUnpickle:
    """Pickles fine; unpickling it calls ``sys.exit`` (or raises KeyboardInterrupt)."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> Any:
        return (_explode, (self.how,))


def _explode(how: str) -> None:
    if os.environ.get("WAYOUT_TEST_CHILD") == "1":  # never in the child
        return None
    if how == "exit":
        sys.exit(7)
    raise KeyboardInterrupt


def return_exploding(how: str) -> ExitsOnUnpickle:
    os.environ["WAYOUT_TEST_CHILD"] = "1"
    return ExitsOnUnpickle(how)


class ExitsOnPickle:
    def __reduce__(self) -> Any:
        sys.exit(5)


class RefusesPickling:
    def __reduce__(self) -> Any:
        import pickle

        raise pickle.PicklingError("refused")


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def say_started_then_wait(started_fifo: str, go_fifo: str) -> str:
    """Write one byte to ``started_fifo`` as user code begins, then wait for one on ``go_fifo``."""
    with open(started_fifo, "wb") as fifo:
        fifo.write(b"!")
    with open(go_fifo, "rb") as fifo:
        return fifo.read().decode()
