"""Z2 — agents-js after the #1748 fix: a kill that does not kill.

On an init timeout the pool "kills" the child with SIGTERM, releases the slot
and forgets it. But the child installed a no-op SIGTERM handler before it
started prewarm, and it arms its own orphan timer only after it answers. A
child stuck in prewarm survives the kill and is forgotten: a live process that
the pool no longer tracks and that nothing will ever time out. The same shape
appears at ``dispose()`` (agents-js #1905): closing the pool leaves it alive.

``sigkill=True`` models the remedy (SIGKILL, tracked until reaped): it passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from models.design import SAFETY, Design, Step

#: Processes the model lets exist at once (the real pool has no such bound:
#: each forgotten child is one more leak).
MAX_PROCESSES = 3


class Proc(NamedTuple):
    phase: str  # "prewarm" | "stuck" (in prewarm, will never answer) | "ready" | "killing"
    tracked: bool
    deadline: bool


class Z2State(NamedTuple):
    pool: str  # "running" | "closing" | "closed"
    procs: tuple[Proc, ...]  # live processes, sorted: interchangeable
    hangs_left: int


def _with(procs: Sequence[Proc], drop: int | None = None, add: Proc | None = None) -> tuple[
        Proc, ...]:
    out = [p for i, p in enumerate(procs) if i != drop]
    if add is not None:
        out.append(add)
    return tuple(sorted(out))


class AgentsJsSigterm(Design[Z2State]):
    name = "z2-agents-js-sigterm"
    title = "agents-js: the init timeout sends SIGTERM to a child that ignores it, then forgets it"
    expected: str | None = SAFETY
    source = "livekit/agents-js after PR #1768; #1905 (dispose)"

    def __init__(self, hangs: int = 1, *, sigkill: bool = False) -> None:
        self.hangs = hangs
        self.sigkill = sigkill
        if sigkill:
            self.name = "z2-fixed-sigkill"
            self.title = "the same pool, killing with SIGKILL and tracking the child until reaped"
            self.expected = None

    def parameters(self) -> str:
        return f"hangs={self.hangs}"

    def initial(self) -> Z2State:
        return Z2State("running", (), self.hangs)

    def successors(self, s: Z2State) -> Iterator[Step[Z2State]]:
        procs = s.procs
        tracked = [p for p in procs if p.tracked]
        if s.pool == "running" and not tracked and len(procs) < MAX_PROCESSES:
            yield Step("pool spawns a child (init timer armed)",
                       s._replace(procs=_with(procs, add=Proc("prewarm", True, True))), spawns=1)
        for i, p in enumerate(procs):
            if p.phase == "prewarm":
                if p.tracked:
                    yield Step("child finishes prewarm and answers",
                               s._replace(procs=_with(procs, i, Proc("ready", True, True))))
                else:
                    # Untracked but not stuck: it answers nobody, arms its orphan timer, exits.
                    yield Step("forgotten child finishes prewarm; its orphan timer ends it",
                               s._replace(procs=_with(procs, i)))
                if s.hangs_left:
                    yield Step("child hangs in prewarm", s._replace(
                        procs=_with(procs, i, p._replace(phase="stuck")),
                        hangs_left=s.hangs_left - 1))
            if p.tracked and p.phase in ("prewarm", "stuck"):
                yield Step("init timer fires: " + ("SIGKILL" if self.sigkill else "SIGTERM"),
                           s._replace(procs=self._kill(procs, i)), time_passed=True)
            if p.phase == "killing":
                yield Step("killed child is reaped", s._replace(procs=_with(procs, i)))
        if s.pool == "running":
            closed = list(procs)
            for i, p in enumerate(procs):
                if p.tracked and p.phase == "ready":
                    closed[i] = Proc("gone", False, False)  # shuts down over IPC
            after = _with([p for p in closed if p.phase != "gone"])
            for i, p in enumerate(after):
                if p.tracked and p.phase in ("prewarm", "stuck"):
                    after = self._kill(after, i)
            yield Step("user closes the pool", Z2State("closing", after, s.hangs_left))
        if s.pool == "closing" and not tracked:
            # dispose() resolves once the pool tracks nothing any more.
            yield Step("pool reports itself closed", s._replace(pool="closed"))

    def _kill(self, procs: Sequence[Proc], i: int) -> tuple[Proc, ...]:
        p = procs[i]
        if self.sigkill:
            return _with(procs, i, Proc("killing", True, True))
        # The no-op handler swallows SIGTERM; the pool releases the slot and forgets it.
        return _with(procs, i, p._replace(tracked=False, deadline=False))

    def quiescent(self, s: Z2State) -> bool:
        if s.pool != "running":
            return s.pool == "closed"
        return any(p.tracked and p.phase == "ready" for p in s.procs)

    def invariants(self, s: Z2State) -> Sequence[str]:
        broken = []
        for p in s.procs:
            if not p.tracked:
                broken.append(f"a live child ({p.phase}) is no longer tracked by the pool")
            if not p.deadline:
                broken.append(f"a live child ({p.phase}) has no armed deadline")
        if s.pool == "closed" and s.procs:
            broken.append(f"the pool is closed but {len(s.procs)} process(es) still live")
        return broken

    def describe(self, s: Z2State) -> str:
        lines = [f"pool {s.pool}"]
        for p in s.procs:
            tags = ("tracked" if p.tracked else "FORGOTTEN") + (
                ", deadline" if p.deadline else ", NO deadline")
            lines.append(f"process: {p.phase} ({tags})")
        return "\n".join(lines) if s.procs else lines[0] + "\nno processes"
