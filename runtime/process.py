"""One child OS process as the parent sees it: start, talk, kill, reap.

Everything here is driven by the event loop, with no thread per child and no
polling:

* the control socket (one end of a ``socketpair``; the child holds the other)
  is non-blocking and registered with ``loop.add_reader``; outgoing frames go
  out at once, and only what the kernel would not take is buffered and flushed
  by ``loop.add_writer``;
* death is an event too. Under fork and spawn the parent is the real parent
  and watches a pidfd, which turns readable exactly when the process became a
  zombie, so the reap (``waitpid``) that follows never blocks. Under
  forkserver the forkserver is the real parent: it reaps the child and writes
  the exit status to the process sentinel, which the parent watches instead.
* kill is SIGKILL through the pidfd, so it can never hit a recycled pid, and
  it takes the child's process group and every process below it along
  (``runtime.descendants``).

This module reports what happened (messages, a bad stream, the exit code)
through callbacks and decides nothing. The child's log records are the one
kind of message it does not pass on: it re-emits them in the parent's
``logging`` itself (``runtime.child_logs``), attaching the child's id and pid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import multiprocessing.spawn
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.context import BaseContext
from typing import Any

import psutil  # type: ignore[import-untyped]

from runtime import child_logs, descendants, protocol

log = logging.getLogger("wayout")


#: Parent-side descriptors of every live child in this process. A child made
#: by fork inherits all of them and closes them first thing (see
#: ``runtime.child.main``); otherwise it would keep its siblings' sockets open.
_PARENT_FDS: set[int] = set()

OnMessage = Callable[[int, object], None]
OnBadStream = Callable[[int, str], None]
OnExit = Callable[[int, "int | None"], None]


#: Signals a service manager or a terminal sends to every process of a group.
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


_PRELOAD = "runtime.forkserver_preload"
#: runtime.forkserver_preload.MAIN_ENV (not imported here: that module runs its
#: preload work when imported).
_MAIN_ENV = "WAYOUT_FORKSERVER_MAIN"
#: The longest the forkserver spends importing the main module before it serves.
MAIN_IMPORT_BOUND_S = 10.0


#: One forkserver start at a time (pools share the forkserver, and MAIN_ENV).
_ensure_lock = threading.Lock()


#: Forkservers kill_forkserver killed: the next start waits for their death.
_killed_forkservers: set[int] = set()
#: How long a start waits for a killed forkserver to be dead (SIGKILL is prompt).
_KILLED_DEATH_BOUND_S = 5.0


def _forkserver_dead(pid: int) -> bool:
    """Whether our forkserver ``pid`` exited (without reaping it: multiprocessing does).

    One we killed is waited for first (off the loop: on the spawner thread):
    until it is dead, multiprocessing would still use it, and once dead it
    would start the replacement itself, without the main module to preload.
    """
    if pid in _killed_forkservers:
        _killed_forkservers.discard(pid)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            select.select([pidfd], [], [], _KILLED_DEATH_BOUND_S)
        finally:
            os.close(pidfd)
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_forkserver(reason: str) -> int | None:
    """SIGKILL the forkserver that does not answer; the next start starts a new one.

    Every start blocked in its handshake then fails at once (its pipes reach
    EOF), and every child of the forkserver dies with it (``PR_SET_PDEATHSIG``).
    Returns its pid, or None if none runs. Never blocks: no lock is taken, and
    the pid cannot be reused meanwhile (the forkserver is our child, reaped
    only by multiprocessing's next ``ensure_running``; the pidfd holds it).
    """
    server = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        if getattr(server, "_forkserver_pid", None) != pid:
            return None  # replaced meanwhile
        log.warning("wayout: killing the forkserver (pid %d): %s; the next start starts "
                    "a new one", pid, reason)
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return None
        _killed_forkservers.add(pid)
    finally:
        os.close(pidfd)
    return pid


def forkserver_preload() -> list[str]:
    """The modules multiprocessing's forkserver preloads (its default: the main module)."""
    server = multiprocessing.forkserver._forkserver  # no public getter
    return list(getattr(server, "_preload_modules", ["__main__"]))


def add_forkserver_preload(modules: Iterable[str]) -> list[str]:
    """Append ``modules`` to multiprocessing's forkserver preload; return the ones it lacked.

    Only a forkserver started afterwards preloads them.
    """
    current = forkserver_preload()
    missing = [m for m in modules if m not in current]
    if missing:
        multiprocessing.forkserver.set_forkserver_preload([*current, *missing])
    return missing


def ensure_forkserver() -> None:
    """Start multiprocessing's forkserver, if it is not running, deaf to SIGINT and SIGTERM.

    A forkserver child dies with the forkserver (``PR_SET_PDEATHSIG``, see
    ``runtime.child``), and the parent would see it exit anyway: its exit code
    comes through the forkserver. A SIGTERM sent to the whole group or cgroup
    (systemd's default, ``kill 0``) must not take every child down while the
    pool drains them, so the forkserver is started with these signals blocked,
    as multiprocessing starts its resource tracker. It still exits when the
    pool's process does. A forkserver started before, by other code, is used
    as it is.
    """
    # The tracker first: starting it unblocks these signals afterwards.
    multiprocessing.resource_tracker.ensure_running()
    # runtime.forkserver_preload unblocks them again in every forked child.
    add_forkserver_preload([_PRELOAD])
    preload = forkserver_preload()
    server = multiprocessing.forkserver._forkserver
    with _ensure_lock:
        # The main module, for runtime.forkserver_preload to import once (see
        # there); only when a forkserver is about to start, not at every spawn:
        # the first, or a replacement of one that died or was killed.
        pid = getattr(server, "_forkserver_pid", None)
        starting = pid is None or _forkserver_dead(pid)
        main = _main_module() if starting and "__main__" in preload else None
        if main is not None:
            os.environ[_MAIN_ENV] = main
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _GROUP_SIGNALS)
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            os.environ.pop(_MAIN_ENV, None)


def warm_forkserver() -> None:
    """Start wayout's forkserver and return once it serves: its preload is done.

    The forkserver imports the child's runtime and the main script before it
    forks anything, and ``Process.start()`` waits for it meanwhile. Called in
    a thread when a pool starts, so that this wait does not hold up the event
    loop; a forkserver that served a start already is not asked again.
    """
    global _warm_forkserver_pid
    ensure_forkserver()
    server = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None or pid == _warm_forkserver_pid:
        return
    # One process that does nothing: it starts only once the preload is done.
    process = multiprocessing.get_context("forkserver").Process(target=_nothing, daemon=True)
    process.start()
    process.join()
    process.close()  # its sentinel pipe now, not when multiprocessing forgets it
    _warm_forkserver_pid = pid


_warm_forkserver_pid: int | None = None


def _nothing() -> None:
    pass


def _main_module() -> str | None:
    """The parent's main module as every child would import it, for the forkserver."""
    data = multiprocessing.spawn.get_preparation_data("wayout")
    path, name = data.get("init_main_from_path"), data.get("init_main_from_name")
    if path is None and name is None:
        return None  # an interactive or embedded parent: nothing to import
    return json.dumps({"path": path, "name": name, "argv": data.get("sys_argv"),
                       "bound_s": MAIN_IMPORT_BOUND_S})


class ChildProcess:
    """The parent's side of one child: its process, pidfd and control socket."""

    def __init__(
        self,
        child_id: int,
        *,
        start_method: str,
        target: Callable[..., None],
        max_message_bytes: int,
        on_message: OnMessage,
        on_bad_stream: OnBadStream,
        on_exit: OnExit,
    ) -> None:
        self.child_id = child_id
        self.pid: int | None = None
        self.exit_code: int | None = None
        self._start_method = start_method
        self._context: BaseContext = multiprocessing.get_context(start_method)
        self._target = target
        self._max = max_message_bytes
        self._on_message = on_message
        self._on_bad_stream = on_bad_stream
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._process: Any = None  # multiprocessing's BaseProcess
        self._sock: socket.socket | None = None
        self._pidfd: int | None = None
        self._death_fd: int | None = None
        self._reader = protocol.child_reader(max_message_bytes)
        self._outgoing = bytearray()
        self._reading = False
        self._writing = False
        self._watching_death = False
        self._reaped = False
        self._released = False
        self._child_sock: socket.socket | None = None

    # --- start ---------------------------------------------------------------------

    def start(self) -> int:
        """Start the process and watch it; return its pid. Raises if it could not start.

        ``prepare``, ``launch`` and ``attach`` in one go, on the loop's thread.
        """
        self.prepare()
        self.launch()
        return self.attach()

    def prepare(self) -> None:
        """On the loop's thread: the control socket and the process object."""
        self._loop = asyncio.get_running_loop()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            inherited: tuple[int, ...] = ()
            if self._start_method == "fork":
                inherited = (parent_sock.fileno(), *sorted(_PARENT_FDS))
            self._process = self._context.Process(  # type: ignore[attr-defined]
                target=self._target,
                args=(child_sock, self.child_id, self._max, inherited),
                name=f"wayout-child-{self.child_id}",
                # Not daemonic: a daemonic process may not start processes of its own,
                # and user jobs may need to.
                daemon=False,
            )
        except BaseException:
            parent_sock.close()
            child_sock.close()
            raise
        self._sock = parent_sock
        self._child_sock = child_sock

    def launch(self) -> None:
        """Start the process: a fork, or a round trip to the forkserver.

        Any thread may call it (a forkserver pool calls it on its spawner
        thread: a forkserver that does not answer blocks here). Raises if the
        process could not be started, with every descriptor closed.
        """
        child_sock, self._child_sock = self._child_sock, None
        assert child_sock is not None
        try:
            if self._start_method == "forkserver":
                ensure_forkserver()
            self._process.start()
        except BaseException:
            self.discard()
            raise
        finally:
            child_sock.close()

    def discard(self) -> None:
        """Forget a process that was never started: close the control socket."""
        if self._child_sock is not None:
            self._child_sock.close()
            self._child_sock = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._process = None

    def kill_unattached(self) -> None:
        """SIGKILL a started process nobody will watch (its pool is gone); close our end."""
        process = self._process
        if process is not None and process.pid is not None:
            descendants.kill_descendants(process.pid, stop_root=True)
            descendants.kill_group(process.pid)
            try:
                process.kill()
            except (ProcessLookupError, OSError):
                pass
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def attach(self) -> int:
        """On the loop's thread, once started: watch the socket and the death; return the pid."""
        process = self._process
        parent_sock = self._sock
        assert process is not None and parent_sock is not None
        self.pid = process.pid
        assert self.pid is not None
        parent_sock.setblocking(False)
        _PARENT_FDS.add(parent_sock.fileno())
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._pidfd = None  # already gone and reaped: the sentinel still reports it
        else:
            _PARENT_FDS.add(self._pidfd)
        if self._start_method == "forkserver" or self._pidfd is None:
            self._death_fd = process.sentinel
        else:
            self._death_fd = self._pidfd
        self._loop.add_reader(parent_sock.fileno(), self._on_readable)
        self._reading = True
        self._loop.add_reader(self._death_fd, self._on_death)
        self._watching_death = True
        return self.pid

    # --- sending -------------------------------------------------------------------

    def send(self, message: protocol.ToChild) -> None:
        """Queue one message; it is written as soon as the socket takes it.

        A child that is gone makes the write fail; that is not reported here:
        its exit is, through the death watch.
        """
        sock = self._sock
        if sock is None or self._reaped:
            return
        frame = protocol.encode(message)
        if self._outgoing:
            self._outgoing += frame
            return
        try:
            sent = sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            return
        if sent < len(frame):
            self._outgoing += frame[sent:]
            assert self._loop is not None
            self._loop.add_writer(sock.fileno(), self._on_writable)
            self._writing = True

    def _on_writable(self) -> None:
        sock = self._sock
        assert sock is not None and self._loop is not None
        try:
            sent = sock.send(self._outgoing)
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._outgoing)  # the child is gone: drop what it will never read
        del self._outgoing[:sent]
        if not self._outgoing:
            self._loop.remove_writer(sock.fileno())
            self._writing = False

    # --- receiving -----------------------------------------------------------------

    def _on_readable(self) -> None:
        self._receive(once=True)

    def _receive(self, *, once: bool) -> None:
        """Read what the child sent; with ``once`` False, everything until EAGAIN or EOF."""
        sock = self._sock
        while self._reading and sock is not None:
            try:
                data = sock.recv(protocol.RECV_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                # EOF: the child closed its end (it is exiting). Its exit is
                # reported by the death watch; there is nothing more to read.
                self._stop_reading()
                return
            try:
                for message in self._reader.feed(data):
                    if isinstance(message, protocol.LogRecord):
                        self._log_record(message)
                    else:
                        self._on_message(self.child_id, message)
            except protocol.ProtocolError as exc:
                self._stop_reading()
                self._on_bad_stream(self.child_id, str(exc))
                return
            if once:
                return

    def _log_record(self, message: protocol.LogRecord) -> None:
        # Not an event: the core never sees a child's logs. A failing logging
        # handler of the user's must not stop us reading (or reaping) the child.
        try:
            child_logs.reemit(message, self.child_id, self.pid)
        except Exception:
            log.exception("wayout: could not re-emit a log record of child %d", self.child_id)

    def _stop_watching_death(self) -> None:
        if self._watching_death:
            self._watching_death = False
            if self._loop is not None and self._death_fd is not None:
                self._loop.remove_reader(self._death_fd)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            if self._sock is not None and self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())

    # --- death ---------------------------------------------------------------------

    def _on_death(self) -> None:
        self._stop_watching_death()
        # What the child wrote before it died was written before it died: read
        # it all first, so that its last report is seen before its exit.
        self._receive(once=False)
        self._reap()

    def _reap(self) -> None:
        process = self._process
        # Under fork/spawn the pidfd says the process is a zombie: waitpid will
        # not block. Under forkserver the sentinel holds the status already.
        process.join(0)
        code = process.exitcode
        self._reaped = True
        self.exit_code = code
        self._release()
        self._on_exit(self.child_id, code)

    def kill(self) -> None:
        """SIGKILL the process, its process group and every process below it.

        The child leads its own group and adopts its orphans (see
        ``runtime.descendants``): it is stopped first, so that it can neither
        fork nor lose a descendant meanwhile, then everything below it is
        frozen and killed, then its group, then the child. Never a recycled
        pid: the pidfd we hold keeps the child's pid (and so its group's id)
        from being reused, and the child's own signal goes through it.
        """
        if self._reaped or self._process is None:
            return
        pid = self.pid
        if self._pidfd is not None and pid is not None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGSTOP)
                descendants.kill_descendants(pid, stop_root=False)
            except ProcessLookupError:
                pass  # reaped already (under forkserver): its group is still killed
            except Exception:  # psutil trouble must not stop the kill itself
                log.exception("wayout: could not list the descendants of child %d",
                              self.child_id)
            descendants.kill_group(pid)
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                self._process.kill()
        except ProcessLookupError:
            pass  # already dead; the death watch reports it

    def memory_mb(self) -> float | None:
        """PSS (else RSS) in MiB, or None if the process is gone."""
        if self.pid is None or self._reaped:
            return None
        try:
            info = psutil.Process(self.pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        value = getattr(info, "pss", None) or info.rss
        return float(value) / (1024 * 1024)

    # --- cleanup ---------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """The process was started and not reaped yet."""
        return self._process is not None and not self._reaped

    def _release(self) -> None:
        """Stop watching and close every descriptor we hold for this child."""
        if self._released:
            return
        self._released = True
        self._stop_reading()
        self._stop_watching_death()
        loop = self._loop
        sock = self._sock
        if sock is not None:
            if self._writing and loop is not None:
                loop.remove_writer(sock.fileno())
                self._writing = False
            _PARENT_FDS.discard(sock.fileno())
            sock.close()
            self._sock = None
        self._outgoing.clear()
        if self._pidfd is not None:
            _PARENT_FDS.discard(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._reaped:
            # Closes the sentinel; a process that was never reaped keeps it (and
            # multiprocessing keeps the zombie's record) so that nothing lies.
            self._process.close()

    def abandon(self) -> None:
        """Forget a process that was not reaped after SIGKILL: close our descriptors."""
        self._release()

    def kill_and_reap_now(self, timeout: float) -> bool:
        """SIGKILL the process and wait for its reap, blocking at most ``timeout``.

        The last resort when nothing supervises this child any more (the
        supervisor loop was cancelled before the pool closed). True if reaped.
        """
        if self._process is None or self._reaped:
            return True
        self._stop_watching_death()
        self.kill()
        fd = self._death_fd
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        ready = False
        while not ready:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready = bool(poller.poll(max(1, int(left * 1000))))
        if ready:
            self._process.join(0)
            self._reaped = True
            self.exit_code = self._process.exitcode
        self._release()
        return self._reaped
