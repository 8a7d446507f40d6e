"""Run a pool in a separate Python process, for what a test cannot do to itself:
SIGKILL the process that owns the pool, or send it SIGTERM and watch it exit."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent.parent


class Script:
    """``python -c source args...`` with the repository and this directory importable.

    ``new_session`` puts it in a process group of its own (with its children).

    Its stdout is read line by line with a deadline (``expect``); its stderr is
    collected when it ends (``finish``).
    """

    def __init__(self, source: str, *args: str, new_session: bool = False) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
        # Buffering as users get it by default (a pipe makes stdout block-buffered).
        env.pop("PYTHONUNBUFFERED", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", source, *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            # Its own process group, for tests that signal the whole group.
            start_new_session=new_session,
        )
        self._buffer = b""
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """The next stdout line starting with ``prefix`` (earlier lines are kept in ``lines``)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.decode()
                self.lines.append(line)
                if line.startswith(prefix):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line {prefix!r} within {timeout}s; got {self.lines}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    _, err = self.finish(timeout=5)
                    raise EOFError(f"the script ended before {prefix!r}; stdout {self.lines}, "
                                   f"stderr:\n{err}")
                self._buffer += chunk

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        """Wait for the exit; return its code and everything it wrote to stderr."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the script did not exit within {timeout}s; stderr:\n"
                                 f"{err.decode(errors='replace')}") from None
        self._buffer += out
        self.lines.extend(line.decode() for line in self._buffer.split(b"\n") if line)
        self._buffer = b""
        return self.proc.returncode, err.decode(errors="replace")

    def kill(self) -> None:
        """Kill the script if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            # Bounded: a surviving grandchild would hold the pipes open.
            self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()


def gone(proc: psutil.Process) -> bool:
    """Dead, or a zombie nobody reaped yet (an orphan's reaper may be slow)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def survivors(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``procs`` still alive after waiting up to ``timeout`` seconds for all to die."""
    left = list(procs)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        left = [p for p in left if not gone(p)]
        if left:
            time.sleep(0.02)  # the test polls processes it does not own; nothing to wait on
    return [p for p in left if not gone(p)]
