"""Two ways to watch the chaos: a live ``rich`` view, or plain lines.

Both read the same ``Timeline`` (and the core's deadlines through ``probe``).
``PlainView`` prints each narrated moment as one line, for CI logs and pipes.
``LiveView`` redraws a dashboard ten times a second from the event loop's own
thread (never rich's refresh thread, which would read the supervisor's
records while the loop changes them): the current scene, every child with its
state and its deadline counting down, the jobs and their outcomes, the faults
with the supervisor's detection and recovery times, and the latest narration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fsm.lifecycles import CHILD
from runtime.tools.demo import probe
from runtime.tools.demo.timeline import OUTCOME_DONE, Line, duration

if TYPE_CHECKING:
    from runtime.tools.demo.scenes import Scene, Stage

#: How a narrated line of each kind looks.
LINE_STYLES = {
    "scene": "bold cyan",
    "child": "",
    "job": "",
    "fault": "bold red",
    "pool": "magenta",
    "ok": "green",
    "fail": "bold red",
    "note": "dim",
}

STATE_STYLES = {
    # children
    "spawned": "cyan", "warming": "yellow", "ready": "green", "busy": "blue",
    "stopping": "magenta", "failed": "bold red", "killed": "red", "abandoned": "bold red",
    # jobs
    "queued": "cyan", "dispatched": "yellow", "unacked": "bold yellow", "running": "blue",
    "cancelling": "magenta",
    "done": "green", "cancelled": "red",
}

#: Children that ended stay on screen this long, so a reader sees how they went.
ENDED_VISIBLE_S = 3.0
REFRESH_S = 0.1


def describe_config(stage: Stage) -> str:
    c = stage.pool.config
    return (f"num_idle={c.num_idle} max_children={c.max_children} start_method={c.start_method} "
            f"initialize_timeout={c.initialize_timeout:g}s ping_interval={c.ping_interval:g}s "
            f"memory_limit_mb={c.memory_limit_mb:g}")


class PlainView:
    """One line per narrated moment."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def narrate(self, line: Line) -> None:
        style = LINE_STYLES.get(line.kind, "")
        prefix = {"fault": "!! ", "fail": "XX ", "ok": "ok "}.get(line.kind, "   ")
        text = Text(f"  {line.at:6.2f}s {prefix}{line.text}", style=style)
        self.console.print(text, soft_wrap=True)

    def scene(self, number: int, total: int, scene: Scene) -> None:
        self.console.print()
        where = f"scene {number}/{total}: " if number else ""
        self.console.print(Text(f"-- {where}{scene.title} --", style="bold"))
        self.console.print(Text(scene.explain, style="dim"), soft_wrap=True)

    @contextlib.asynccontextmanager
    async def showing(self, stage: Stage) -> AsyncIterator[None]:
        self.console.print(Text(f"pool: {describe_config(stage)}", style="dim"), soft_wrap=True)
        yield


class LiveView:
    """A dashboard of the pool, redrawn in place."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lines: deque[Line] = deque(maxlen=200)
        self.current: tuple[int, int, Scene] | None = None

    def narrate(self, line: Line) -> None:
        self.lines.append(line)

    def scene(self, number: int, total: int, scene: Scene) -> None:
        self.current = (number, total, scene)

    @contextlib.asynccontextmanager
    async def showing(self, stage: Stage) -> AsyncIterator[None]:
        live = Live(console=self.console, auto_refresh=False, transient=False,
                    redirect_stdout=False, redirect_stderr=False, vertical_overflow="crop")

        async def redraw() -> None:
            while True:
                live.update(self.render(stage), refresh=True)
                await asyncio.sleep(REFRESH_S)

        with live:
            task = asyncio.ensure_future(redraw())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                live.update(self.render(stage), refresh=True)

    # --- the dashboard -------------------------------------------------------------

    def render(self, stage: Stage) -> RenderableType:
        height = self.console.size.height
        parts: list[RenderableType] = [self._header(stage), self._status(stage)]
        children = self._children(stage)
        jobs = self._jobs(stage, rows=6 if height >= 40 else 4)
        faults = self._faults(stage)
        parts.extend([children, jobs, faults])
        used = sum(len(self.console.render_lines(p, pad=False)) for p in parts)
        room = max(3, height - used - 3)
        parts.append(self._narration(room))
        return Group(*parts)

    def _header(self, stage: Stage) -> RenderableType:
        if self.current is None:
            title, body = "wayout demo: chaos", ""
        else:
            number, total, scene = self.current
            where = f"chaos scene {number}/{total}: " if number else "chaos: "
            title, body = f"{where}{scene.title}", scene.explain
        return Panel(Text(body), title=Text(title, style="bold cyan"), title_align="left",
                     subtitle=Text(describe_config(stage), style="dim"), subtitle_align="left",
                     border_style="cyan")

    def _status(self, stage: Stage) -> RenderableType:
        timeline = stage.timeline
        st = stage.pool.status()
        counts = ", ".join(f"{n} {s}" for s, n in st.children.items()
                           if n and s not in CHILD.final_states) or "no children"
        avail = Text("available", style="green") if st.available else Text(
            "unavailable", style="red")
        text = Text.assemble(("pool ", "bold"), (st.state, "bold"), " · ", avail,
                             (f" ({st.reason})", "dim"), f" · {counts}",
                             (f" · t+{timeline.now():.1f}s", "dim"))
        return text

    def _children(self, stage: Stage) -> RenderableType:
        timeline = stage.timeline
        table = Table(title="children", title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), expand=True)
        table.add_column("child", justify="right", no_wrap=True, min_width=5)
        table.add_column("pid", justify="right", no_wrap=True, min_width=7)
        table.add_column("state", no_wrap=True, min_width=8)
        table.add_column("its deadline", no_wrap=True, min_width=38)
        table.add_column("job", no_wrap=True, min_width=6)
        table.add_column("why it ended", no_wrap=True, overflow="ellipsis", ratio=1)
        now = timeline.now()
        live = {c.ident: c for c in probe.children(stage.pool)}
        for ident, life in sorted(timeline.children.items()):
            current = live.get(ident)
            if current is None and (life.ended is None or now - life.ended > ENDED_VISIBLE_S):
                continue
            state = current.state if current is not None else life.state
            style = STATE_STYLES.get(state, "")
            deadline: RenderableType = ""
            if current is not None and current.countdown is not None:
                deadline = countdown_bar(current.countdown)
            job = f"job {current.job}" if current is not None and current.job is not None else ""
            why = life.reason if state in ("stopping", "failed", "killed", "abandoned") else ""
            table.add_row(str(ident), str(life.pid or ""), Text(state, style=style), deadline,
                          job, Text(why, style="dim" if state == "stopping" else "red"),
                          style="dim" if current is None else "")
        return table

    def _jobs(self, stage: Stage, rows: int) -> RenderableType:
        timeline = stage.timeline
        table = Table(title="jobs", title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), expand=True)
        table.add_column("job", justify="right", no_wrap=True, min_width=3)
        table.add_column("what", no_wrap=True, overflow="ellipsis", max_width=40)
        table.add_column("state", no_wrap=True, min_width=10)
        table.add_column("child", no_wrap=True, min_width=5)
        table.add_column("deadline / took", no_wrap=True, min_width=30)
        table.add_column("outcome", no_wrap=True, overflow="ellipsis", ratio=1)
        live = probe.jobs(stage.pool)
        shown = list(timeline.jobs.values())[-rows:]
        for job in shown:
            current = live.get(job.ident)
            state = job.outcome_state if job.settle_count else job.state
            route = "→".join(str(c) for c in job.children)
            if job.went_through("requeue"):
                route += " requeued"
            when: RenderableType = ""
            if current is not None and current.countdown is not None:
                when = countdown_bar(current.countdown)
            elif job.settled is not None:
                when = Text(f"took {duration(job.settled - job.submitted)}", style="dim")
            outcome = Text("")
            if job.settle_count:
                style = "green" if job.as_expected else "bold red"
                text = "done" if job.outcome == OUTCOME_DONE else (
                    f"{job.error}: {job.message.split(': ', 1)[-1]}")
                mark = "expected" if job.as_expected else f"EXPECTED {job.expect}"
                outcome = Text(text, style=style)
                if job.expect != OUTCOME_DONE or not job.as_expected:
                    outcome = Text.assemble((f"{mark}: ", "dim" if job.as_expected else style),
                                            outcome)
            table.add_row(str(job.ident), job.label, Text(state, style=STATE_STYLES.get(state, "")),
                          route, when, outcome)
        hidden = len(timeline.jobs) - len(shown)
        if hidden > 0:
            table.caption = f"and {hidden} earlier jobs"
            table.caption_justify = "left"
        return table

    def _faults(self, stage: Stage) -> RenderableType:
        table = Table(title="faults injected", title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1))
        table.add_column("#", justify="right")
        table.add_column("fault", min_width=30)
        table.add_column("supervisor acted", justify="right", no_wrap=True)
        table.add_column("recovered", justify="right", no_wrap=True)
        for i, fault in enumerate(stage.timeline.faults, 1):
            detect = "…" if fault.detect_s is None else f"after {duration(fault.detect_s)}"
            recover = "…" if fault.recover_s is None else f"after {duration(fault.recover_s)}"
            table.add_row(str(i), Text(fault.what, style="red"), detect, recover)
        if not stage.timeline.faults:
            table.add_row("", Text("none yet", style="dim"), "", "")
        return table

    def _narration(self, rows: int) -> RenderableType:
        text = Text()
        for line in list(self.lines)[-rows:]:
            text.append(f"{line.at:6.2f}s ", style="dim")
            text.append(line.text + "\n", style=LINE_STYLES.get(line.kind, ""))
        text.rstrip()
        return Panel(text, title="what happens", title_align="left", border_style="dim",
                     height=rows + 2)


def countdown_bar(countdown: probe.Countdown, width: int = 12) -> Text:
    """``setting ████░░ 1.2s``: the deadline's share left, and the seconds left."""
    left = max(0.0, countdown.left)
    share = min(1.0, left / countdown.total) if countdown.total > 0 else 0.0
    filled = round(share * width)
    style = "green" if share > 0.5 else "yellow" if share > 0.2 else "red"
    text = Text(f"{countdown.setting} ", style="dim")
    text.append("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f" {left:4.1f}s")
    return text
