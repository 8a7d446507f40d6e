"""The child process: what runs inside each pooled process.

Two threads share the work, so that a busy child still answers its parent:

* the **main thread** runs user code, one thing at a time: the initializer,
  then jobs. A coroutine function runs on the child's own event loop, one loop
  for the life of the child, so state the initializer binds to it survives
  into jobs.
* the **control thread** reads the control socket. It answers every ``Ping``
  with a ``Pong`` at once (also while a job runs), hands ``Init`` and ``Job``
  to the main thread, and handles ``Cancel`` and ``Stop``. When the socket
  closes (the parent is gone) it ends the process at once.

The handshake the core relies on: ``Hello`` first; ``Init`` → ``Ready`` or
``InitError``; for a job, ``JobAck`` is sent *before* any user code runs (even
before the job is unpickled), then ``JobDone`` or ``JobRaised``. A cancelled job
is answered by ``CancelAck`` and the child then exits: cancelling means
stopping (a job interrupted half-way may have left the process in any state).

Cancelling interrupts user code where it is: a synchronous job gets an
exception raised on the main thread by a signal (``SIGUSR1``, which also
breaks blocking calls like ``time.sleep``); a coroutine job has its task
cancelled. User code that swallows the cancellation simply finishes; the
core's ``close_timeout`` bounds how long the parent waits before SIGKILL.

A child never outlives its pool's process (``_die_with_parent``): on Linux the
kernel SIGKILLs it when its parent dies (``PR_SET_PDEATHSIG``), which works
even for a child that is stopped or stuck in C code; and the control thread
ends it on EOF of the control socket. Under forkserver the parent is the
forkserver, which exits once the pool's process is gone; multiprocessing
hands every forkserver child a copy of the pipe that keeps the forkserver
alive, which the child closes so that it does not keep its own parent alive.

Nothing a job starts outlives the child (``_hold_descendants``): the child
leads its own process group and adopts its orphaned descendants (a child
subreaper), so the parent's kill finds and ends all of them
(``runtime.descendants``), and the child ends them itself before it exits.

Output and logs are never lost silently: stdout and stderr are inherited from
the parent (stdout made line-buffered, so that a child killed later still
leaves every full line behind); ``logging`` records and tracebacks of uncaught
exceptions in threads go to the parent's ``logging`` (``runtime.child_logs``);
a crash in C code dumps its traceback to stderr (``faulthandler``).
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import inspect
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import queue
import select
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Awaitable
from types import FrameType
from typing import Any

import msgspec

from runtime import child_logs, descendants, protocol

#: Exit codes a child uses when it ends itself (diagnostics; the core does not
#: interpret exit codes).
EXIT_STOPPED = 0
EXIT_CONTROL_CLOSED = 3
EXIT_PROTOCOL_ERROR = 4

#: The signal that interrupts a synchronous job the parent cancels.
CANCEL_SIGNAL = signal.SIGUSR1
_CANCEL_RETRIES = 50
_CANCEL_RETRY_SECONDS = 0.02

#: prctl(2) options: the signal the kernel sends us when our parent dies; and
#: adopting our orphaned descendants instead of letting init have them.
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

# Longest exception message and traceback text sent back, in characters; the
# rest is cut so that an error report always fits in one frame.
_MAX_ERROR_TEXT = 64 * 1024


class _JobCancelled(BaseException):
    """Raised in a synchronous job when its parent cancels it.

    A BaseException, like ``asyncio.CancelledError``, so that user code's
    ``except Exception`` does not swallow it.
    """


def main(
    sock: socket.socket,
    child_id: int,
    max_message_bytes: int,
    inherited_fds: tuple[int, ...] = (),
) -> None:
    """The child's entry point (the target of its ``multiprocessing`` process).

    ``inherited_fds`` are the parent-side descriptors a *forked* child got by
    accident: its own parent end and those of its siblings. Keeping them open
    would hide the parent's death (no EOF on the control socket) from this
    child and keep siblings' sockets alive, so they are closed first.
    """
    _die_with_parent(sock)
    _hold_descendants()
    for fd in inherited_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    _release_forkserver()
    _reset_inherited_state()
    _keep_output()
    sock.setblocking(True)
    try:
        _Child(sock, child_id, max_message_bytes).run()
    except BaseException:
        # Only a bug of wayout's own can get here (user code's errors are
        # reported as job or init errors): say so where the parent looks.
        logging.getLogger().critical("wayout child %d failed", child_id, exc_info=True)
        raise
    finally:
        end_descendants()


def _hold_descendants() -> None:
    """Lead a process group of our own, and adopt our orphaned descendants.

    The group: the parent's kill signals it whole, and a terminal's Ctrl-C
    (sent to the foreground group) no longer reaches us or what jobs start.
    The subreaper: a process a job starts stays below us even if it calls
    ``setsid`` or its parent exits, so that ``runtime.descendants`` finds it
    when we are killed or exit.
    """
    try:
        os.setpgid(0, 0)
    except OSError as exc:  # a session leader (cannot happen for a forked child)
        print(f"wayout child: setpgid failed: {exc}", file=sys.stderr, flush=True)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            print(f"wayout child: prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(errno)}",
                  file=sys.stderr, flush=True)


def end_descendants() -> None:
    """SIGKILL every process below this child before it exits (a job's leftovers)."""
    try:
        descendants.kill_descendants(os.getpid(), stop_root=False)
    except Exception as exc:  # never keep a child from exiting
        print(f"wayout child: could not end its descendants: {exc}", file=sys.stderr, flush=True)


def _exit(code: int) -> None:
    """End the child at once (from any thread), taking its descendants with it."""
    end_descendants()
    os._exit(code)


def _die_with_parent(sock: socket.socket) -> None:
    """Arrange to be killed when the parent dies; exit now if it died already.

    ``PR_SET_PDEATHSIG`` only covers a parent that dies *after* the call, so
    the parent's death is checked again afterwards: under fork and spawn the
    parent must still be the pool's process (``getppid`` changes once it
    died); under every start method the pool's end of the control socket must
    still be open. A forkserver child's parent is the forkserver, whose pid
    we do not know; its socket check is what counts.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            print(f"wayout child: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}",
                  file=sys.stderr, flush=True)
    pool = multiprocessing.parent_process()
    forkserver_child = multiprocessing.forkserver._forkserver.get_inherited_fds() is not None
    if pool is not None and not forkserver_child and os.getppid() != pool.pid:
        os._exit(EXIT_CONTROL_CLOSED)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    if poller.poll(0):  # RDHUP, HUP or ERR: the pool's end is closed
        os._exit(EXIT_CONTROL_CLOSED)


def _release_forkserver() -> None:
    """Close the forkserver's "alive" pipe this process got by inheritance.

    The forkserver exits when every holder of that pipe is gone. A forkserver
    child gets a copy so that the forkserver stays up to report its exit code;
    a forked child copies its parent's. Either would keep a forkserver alive
    after the pool's process died, and with it (under forkserver) this
    child's parent: no ``PR_SET_PDEATHSIG`` would ever fire. Forgetting the
    server also lets user code in the child start a forkserver of its own.
    """
    server: Any = multiprocessing.forkserver._forkserver  # its private state, by name
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass
    server._forkserver_alive_fd = None
    server._forkserver_pid = None
    server._forkserver_address = None


def _keep_output() -> None:
    """Lose as little of the child's own output as possible if it dies abruptly."""
    # A pipe or file makes stdout block-buffered: a child SIGKILLed later would
    # take its last few kilobytes of prints with it. stderr is line-buffered.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(line_buffering=True)
        except (OSError, ValueError):
            pass
    if not faulthandler.is_enabled():
        try:
            faulthandler.enable()
        except (AttributeError, OSError, ValueError):  # no usable stderr
            pass


def _reset_inherited_state() -> None:
    # A forked child inherits the parent's asyncio state: the "running loop"
    # marker (which would make run_until_complete refuse to run) and the
    # signal wake-up fd (a signal here would write into the parent's loop).
    asyncio._set_running_loop(None)
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # not the main thread: nothing was inherited there
        return
    # Python-level handlers installed by the parent (e.g. the asyncio ones for
    # SIGTERM) would be no-ops here; the default behaviour is what a child needs.
    for signum in signal.valid_signals():
        try:
            if callable(signal.getsignal(signum)):
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    # A terminal's Ctrl-C reaches the whole process group, and a service
    # manager's SIGTERM often every process of the service (systemd's default
    # KillMode=control-group, docker's --init, a shell's kill 0). The parent
    # decides when its children stop (it may be draining their jobs right
    # then), so neither signal may end a child behind its back. A Python-level
    # handler that does nothing, not SIG_IGN: an ignored signal stays ignored
    # across exec, in every process user code starts.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _leave_it_to_the_parent)
    # A forkserver child inherits them blocked (runtime.process starts the
    # forkserver so); a blocked signal would stay blocked across exec too.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))


def _leave_it_to_the_parent(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM in a child: its parent stops it (and logging here could deadlock)."""


def _safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when its ``__str__`` raises."""
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__qualname__}: str() failed>"


def _format(exc: BaseException) -> str:
    """The traceback of ``exc`` as text (``traceback`` survives a raising ``__str__``)."""
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:
        return f"<traceback of {type(exc).__qualname__} could not be formatted>"


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class _Child:
    def __init__(self, sock: socket.socket, child_id: int, max_message_bytes: int) -> None:
        self._sock = sock
        self._child_id = child_id
        self._max = max_message_bytes
        self._text_limit = max(64, min(_MAX_ERROR_TEXT, (max_message_bytes - 256) // 8))
        self._send_lock = threading.Lock()
        # Main thread's work; None means "stop".
        self._inbox: queue.SimpleQueue[protocol.Init | protocol.Job | None] = queue.SimpleQueue()
        self._main_thread = threading.get_ident()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Shared between the threads, under _lock: which job runs, and how.
        self._lock = threading.Lock()
        # Set while no job runs on the main thread (cleared when one starts).
        self._job_over = threading.Event()
        self._job_over.set()
        self._current: int | None = None
        self._task: asyncio.Future[Any] | None = None
        self._cancel: int | None = None
        self._stopping = False
        # Main thread only (read by the signal handler, which runs on it):
        # True exactly while a synchronous job's user code may be interrupted.
        self._interruptible = False
        # Main thread only: the job the signal handler raised _JobCancelled in.
        self._cancel_raised: int | None = None

    # --- both threads -------------------------------------------------------------

    def _send(self, message: protocol.FromChild) -> None:
        frame = protocol.encode(message)
        try:
            with self._send_lock:
                self._sock.sendall(frame)
        except OSError:
            _exit(EXIT_CONTROL_CLOSED)  # the parent is gone: nobody to work for

    def _send_log(self, message: protocol.LogRecord) -> None:
        """Send a record made by user code, which may run on the main thread.

        There, the cancel signal raises inside whatever runs; inside
        ``sendall`` it would leave half a frame on the stream and the parent
        would see garbage instead of the CancelAck. So it waits (blocked)
        until the frame is out, and is delivered right after.
        """
        if len(protocol.encode(message)) - protocol.HEADER.size > self._max:
            # Possible only with a tiny max_message_bytes and wide characters: a
            # frame over the cap would get this child killed for a log line.
            message = msgspec.structs.replace(
                message, logger=message.logger[:64], message=message.message[:64]
                + " ... [log record too large for max_message_bytes]",
                exc_text="", pathname="", func="", thread="")
        if threading.get_ident() != self._main_thread:
            self._send(message)
            return
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {CANCEL_SIGNAL})
        try:
            self._send(message)
        finally:
            if CANCEL_SIGNAL not in blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {CANCEL_SIGNAL})

    def _current_job(self) -> int | None:
        return self._current

    # --- main thread -------------------------------------------------------------

    def run(self) -> None:
        signal.signal(CANCEL_SIGNAL, self._on_cancel_signal)
        child_logs.install(child_logs.ForwardingHandler(self._send_log, self._current_job,
                                                        self._clip))
        threading.excepthook = child_logs.log_uncaught_thread_exception
        threading.Thread(target=self._read_forever, name="wayout-control", daemon=True).start()
        self._send(protocol.Hello(os.getpid()))
        while True:
            work = self._inbox.get()
            if work is None:
                return
            if isinstance(work, protocol.Init):
                self._initialize(work)
            elif not self._run_job(work):
                return
            if self._stopping:
                return

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    def _initialize(self, init: protocol.Init) -> None:
        # Before the initializer, which may well configure logging its own way.
        logging.getLogger().setLevel(init.log_level)
        try:
            if init.payload is not None:
                initializer, initargs = pickle.loads(init.payload)
                result = initializer(*initargs)
                if inspect.isawaitable(result):
                    loop = self._event_loop()
                    loop.run_until_complete(asyncio.ensure_future(result, loop=loop))
        except BaseException as exc:  # SystemExit too: it is the initializer's failure
            reason = self._clip(f"{_type_name(exc)}: {_safe_str(exc)}\n{_format(exc)}")
            self._send(protocol.InitError(reason))
            # Stay until the parent kills or stops us: exiting now could let the
            # exit overtake this report and lose its reason.
            return
        self._send(protocol.Ready())

    def _run_job(self, work: protocol.Job) -> bool:
        """Run one job; False when the child must exit afterwards."""
        job = work.job
        with self._lock:
            cancelled_before_start = self._cancel == job
            if not cancelled_before_start:
                self._current = job
                self._job_over.clear()
        if cancelled_before_start:
            self._send(protocol.CancelAck(job))
            return False
        self._send(protocol.JobAck(job))  # before any user code, unpickling included
        reply: protocol.FromChild
        try:
            self._interruptible = True
            if self._cancel == job:  # the cancel signal came before we were interruptible
                raise _JobCancelled
            fn, args, kwargs = pickle.loads(work.payload)
            value = fn(*args, **kwargs)
            self._interruptible = False
            if inspect.isawaitable(value):
                value = self._run_coroutine(job, value)
            reply = self._result(job, value)
        except _JobCancelled:
            reply = protocol.CancelAck(job)
        except asyncio.CancelledError as exc:
            reply = protocol.CancelAck(job) if self._cancel == job else self._error(job, exc)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are job errors too
            # The cancel was raised in the job and something turned it into
            # another exception on its way out: C code does (the parser,
            # compiling a module that unpickling imports, reports a
            # SyntaxError "can't load unicodedata module"), and so does a
            # job's own handler. The job ended because it was cancelled.
            reply = protocol.CancelAck(job) if self._cancel_raised == job else self._error(job, exc)
        finally:
            self._interruptible = False
            with self._lock:
                self._current = None
                self._task = None
                self._job_over.set()
        self._send(reply)
        return not isinstance(reply, protocol.CancelAck)

    def _run_coroutine(self, job: int, awaitable: Awaitable[Any]) -> Any:
        loop = self._event_loop()
        task = asyncio.ensure_future(awaitable, loop=loop)
        with self._lock:
            self._task = task
            cancel_now = self._cancel == job
        if cancel_now:
            task.cancel()
        return loop.run_until_complete(task)

    def _on_cancel_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._interruptible and self._cancel is not None and self._cancel == self._current:
            self._interruptible = False  # once: a second signal must not hit our own code
            self._cancel_raised = self._current
            raise _JobCancelled

    def _result(self, job: int, value: object) -> protocol.FromChild:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # a __reduce__ may raise anything, SystemExit too
            return protocol.JobRaised(
                job,
                _type_name(exc),
                self._clip(
                    f"job {job} returned a {type(value).__qualname__} that cannot be pickled "
                    f"({_safe_str(exc)}); return plain data or instances of module-level classes"
                ),
                self._clip(_format(exc)),
            )
        if len(data) + protocol.ENVELOPE_BYTES > self._max:
            return protocol.JobRaised(
                job,
                "wayout.ResultTooLarge",
                f"job {job} returned {len(data)} bytes once pickled, more than "
                f"max_message_bytes={self._max}; return less data or raise the limit",
                "",
            )
        return protocol.JobDone(job, data)

    def _error(self, job: int, exc: BaseException) -> protocol.JobRaised:
        """The report of a job that raised: its type, text, traceback and the
        pickled exception itself, so that the caller can raise it with its own
        type. Nothing here may raise: an exception whose ``__str__`` or
        ``__reduce__`` raises is still the job's error, never the child's."""
        report = protocol.JobRaised(
            job, _type_name(exc), self._clip(_safe_str(exc)), self._clip(_format(exc)))
        try:
            data = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            return report
        text_bytes = len(protocol.encode(report))
        if text_bytes + len(data) + protocol.ENVELOPE_BYTES > self._max:
            return report  # too large to send with its text: the text alone goes
        return msgspec.structs.replace(report, exception=data)

    def _clip(self, text: str) -> str:
        limit = self._text_limit
        if len(text) <= limit:
            return text
        return text[: limit - 20] + "\n... [truncated]"

    # --- control thread ------------------------------------------------------------

    def _read_forever(self) -> None:
        reader = protocol.parent_reader(self._max)
        while True:
            try:
                data = self._sock.recv(protocol.RECV_BYTES)
            except OSError:
                data = b""
            if not data:
                _exit(EXIT_CONTROL_CLOSED)
            try:
                for message in reader.feed(data):
                    self._dispatch(message)
            except protocol.ProtocolError as exc:
                print(f"wayout child {self._child_id}: {exc}", file=sys.stderr, flush=True)
                _exit(EXIT_PROTOCOL_ERROR)

    def _dispatch(self, message: object) -> None:
        if isinstance(message, protocol.Ping):
            self._send(protocol.Pong())
        elif isinstance(message, protocol.Init | protocol.Job):
            self._inbox.put(message)
        elif isinstance(message, protocol.Cancel):
            self._cancel_job(message.job)
        elif isinstance(message, protocol.Stop):
            self._stopping = True
            self._inbox.put(None)

    def _cancel_job(self, job: int) -> None:
        with self._lock:
            self._cancel = job
            self._stopping = True
            running = self._current == job
            task = self._task
        if running and task is not None:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(task.cancel)
        elif running:
            # A signal that lands after the interpreter's last check and before a
            # blocking call (time.sleep, a C-level wait) is handled only when that
            # call returns. So it is sent again until the job gives up, for a
            # while; a job that ignores it is killed at close_timeout anyway.
            for _ in range(_CANCEL_RETRIES):
                signal.pthread_kill(self._main_thread, CANCEL_SIGNAL)
                if self._job_over.wait(_CANCEL_RETRY_SECONDS):
                    break
        # An idle main thread (or one about to pick this job up) must wake and exit.
        self._inbox.put(None)
