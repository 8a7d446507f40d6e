"""The demo's closing tables: what was shown, and whether every expectation held.

``Report`` gathers one ``Expectation`` per claim the demo makes (a diagram
drawn, a zoo design caught, a scene's checks, no job lost, no leak); the
exit status of ``wayout demo`` is 0 only if all of them hold. ``render``
draws the faults with the supervisor's answers and the summary; the lines it
prints are stable, so that tests and CI can read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from runtime.tools.demo.modelcheck import CheckOutcome
from runtime.tools.demo.scenes import Chaos
from runtime.tools.demo.timeline import OUTCOME_DONE, duration
from runtime.tools.leaks import Leaks


@dataclass(frozen=True)
class Expectation:
    topic: str
    detail: str
    holds: bool


@dataclass
class Report:
    expectations: list[Expectation] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    check: CheckOutcome | None = None
    chaos: Chaos | None = None
    leaks: Leaks | None = None

    def expect(self, topic: str, detail: str, holds: bool) -> bool:
        self.expectations.append(Expectation(topic, detail, holds))
        return holds

    @property
    def ok(self) -> bool:
        return bool(self.expectations) and all(e.holds for e in self.expectations)

    @property
    def failures(self) -> list[Expectation]:
        return [e for e in self.expectations if not e.holds]


def judge_check(report: Report, outcome: CheckOutcome) -> None:
    report.check = outcome
    own = outcome.own
    states = " + ".join(f"{r.stats.states:,}" for r in own)
    report.expect("model check: wayout's core",
                  f"verified ({', '.join(r.design for r in own)}: {states} states)",
                  bool(own) and all(r.as_expected for r in own))
    bad, fixed = outcome.zoo_bad, outcome.zoo_fixed
    caught = [r for r in bad if r.as_expected]
    report.expect("model check: bug zoo",
                  f"{len(caught)}/{len(bad)} historical designs caught, "
                  f"{sum(r.as_expected for r in fixed)}/{len(fixed)} fix verified",
                  bool(bad) and len(caught) == len(bad) and all(r.as_expected for r in fixed))
    missed = [r.design for r in outcome.results if not r.as_expected]
    if missed:
        report.expect("model check: not as expected", ", ".join(missed), False)


def judge_chaos(report: Report, chaos: Chaos, leaks: Leaks, scene_count: int) -> None:
    report.chaos, report.leaks = chaos, leaks
    timeline = chaos.timeline
    for number, result in enumerate(chaos.results, 1):
        detail = result.answer if result.ok else "FAILED: " + "; ".join(result.failed_checks)
        report.expect(f"scene {number}: {result.title}", detail, result.ok)
    if len(chaos.results) < scene_count:
        report.expect("chaos", f"only {len(chaos.results)} of {scene_count} scenes ran", False)
    outcomes = timeline.outcomes()
    lost = timeline.lost_jobs()
    twice = timeline.twice_settled()
    unexpected = [j for j in timeline.jobs.values() if j.settle_count and not j.as_expected]
    parts = [f"{n} {outcome}" for outcome, n in sorted(outcomes.items(), key=_done_first)
             if outcome != "lost"]
    report.expect("jobs by outcome",
                  ", ".join(parts) + f"; lost {len(lost)}; settled twice {len(twice)}",
                  not lost and not twice and not unexpected and not timeline.unknown_settles)
    for job in unexpected:
        report.expect(f"job {job.ident}", f"expected {job.expect}, got {job.outcome}", False)
    faults = timeline.faults
    recovered = [f for f in faults if f.recover_s is not None]
    report.expect("faults injected",
                  f"{len(faults)} injected, {sum(f.detected is not None for f in faults)} "
                  f"answered, {len(recovered)} recovered from",
                  bool(faults) and len(recovered) == len(faults))
    report.expect("leaks after close",
                  f"{len(leaks.processes)} processes, {len(leaks.fds)} file descriptors",
                  leaks.none)
    for what in (*leaks.processes, *leaks.fds):
        report.expect("leaked", what, False)


def _done_first(item: tuple[str, int]) -> tuple[int, str]:
    return (0 if item[0] == OUTCOME_DONE else 1, item[0])


def faults_table(chaos: Chaos) -> Table:
    table = Table(title="faults and the supervisor's answers", title_justify="left",
                  title_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("scene")
    table.add_column("fault injected", min_width=30)
    table.add_column("supervisor acted", justify="right", no_wrap=True)
    table.add_column("recovered", justify="right", no_wrap=True)
    for fault in chaos.timeline.faults:
        table.add_row(fault.scene, fault.what, duration(fault.detect_s),
                      duration(fault.recover_s))
    table.caption = ("both counted from the fault. acted: the supervisor saw the exit, or the "
                     "deadline fired, or it sent the kill. recovered: the pool back at its warm "
                     "target (num_idle children ready, none starting or dying)")
    table.caption_justify = "left"
    return table


def summary_table(report: Report) -> Table:
    table = Table(title="wayout demo: summary", title_justify="left", title_style="bold",
                  box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("")
    table.add_column("what happened", min_width=40, ratio=1)
    table.add_column("", no_wrap=True)
    for e in report.expectations:
        table.add_row(e.topic, e.detail,
                      Text("ok", style="green") if e.holds else Text("FAILED", style="bold red"))
    if report.seconds:
        total = sum(report.seconds.values())
        parts = ", ".join(f"{name} {s:.1f} s" for name, s in report.seconds.items())
        table.add_row("time", f"{total:.1f} s ({parts})", "")
    return table


def render(report: Report) -> RenderableType:
    parts: list[RenderableType] = []
    if report.chaos is not None and report.chaos.timeline.faults:
        parts.extend([faults_table(report.chaos), Text()])
    parts.extend([summary_table(report), Text()])
    if report.ok:
        parts.append(Text("every expectation held: no state without a way out, no job lost, "
                          "nothing leaked", style="bold green"))
    else:
        parts.append(Text(f"{len(report.failures)} expectation(s) FAILED: "
                          + "; ".join(f"{e.topic}: {e.detail}" for e in report.failures),
                          style="bold red"))
    return Group(*parts)


def print_report(console: Console, report: Report) -> None:
    console.print(render(report))
