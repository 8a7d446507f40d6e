"""Z6 — supervisord: STOPPING forever (Supervisor #734, #1073).

Stopping a program sends its stop signal, then SIGKILL after ``stopwaitsecs``.
If SIGKILL does not lead to a reap (the process is in uninterruptible sleep,
D state), the program stays STOPPING forever: it can be neither stopped again
nor removed. systemd instead bounds the final SIGKILL too and, when it times
out, enters a failed state.

``kill_timeout=True`` models systemd's rule (the kill state has its own
timeout to a final state); it passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.design import WAY_OUT, Design, Step


class Z6State(NamedTuple):
    program: str  # "running" | "stopping" | "stopped" | "abandoned"
    sigkill_sent: bool
    d_state: bool  # in uninterruptible sleep: signals do nothing, no reap
    d_left: int


class SupervisordStopping(Design[Z6State]):
    name = "z6-supervisord-stopping"
    title = "supervisord #734/#1073: SIGKILL that is never reaped leaves STOPPING forever"
    expected: str | None = WAY_OUT
    source = "Supervisor/supervisor #734, #1073"

    def __init__(self, *, kill_timeout: bool = False) -> None:
        self.kill_timeout = kill_timeout
        if kill_timeout:
            self.name = "z6-fixed-systemd"
            self.title = "the same program under systemd's rule: the kill itself times out"
            self.expected = None

    def initial(self) -> Z6State:
        return Z6State("running", False, False, 1)

    def successors(self, s: Z6State) -> Iterator[Step[Z6State]]:
        alive = s.program in ("running", "stopping")
        if alive and not s.d_state and s.d_left:
            yield Step("process enters uninterruptible sleep (D state)",
                       s._replace(d_state=True, d_left=s.d_left - 1))
        if s.program == "running":
            yield Step("user: supervisorctl stop (stop signal sent)",
                       s._replace(program="stopping"))
        if s.program == "stopping" and not s.d_state:
            yield Step("process exits and is reaped", s._replace(program="stopped"))
        if s.program == "stopping" and not s.sigkill_sent:
            yield Step("stopwaitsecs passes: SIGKILL", s._replace(sigkill_sent=True),
                       time_passed=True)
        if s.program == "stopping" and s.sigkill_sent and self.kill_timeout:
            yield Step("the SIGKILL's own timeout passes: give up, failed",
                       s._replace(program="abandoned"), time_passed=True)

    def quiescent(self, s: Z6State) -> bool:
        return s.program in ("running", "stopped", "abandoned")

    def invariants(self, s: Z6State) -> Sequence[str]:
        if s.program == "stopping" and s.sigkill_sent and not self.kill_timeout:
            return ["STOPPING after SIGKILL has no deadline: the kill state needs a timeout "
                    "to a final state"]
        return ()

    def describe(self, s: Z6State) -> str:
        lines = [f"program {s.program.upper()}"]
        if s.sigkill_sent and s.program == "stopping":
            lines.append("SIGKILL sent, waiting for the reap")
        if s.d_state and s.program in ("running", "stopping"):
            lines.append("process in D state (ignores every signal)")
        return "\n".join(lines)
