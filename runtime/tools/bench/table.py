"""The results as a ``rich`` table (and as Markdown, for the README)."""

from __future__ import annotations

from typing import Any

from runtime.tools.bench.results import IMPLEMENTATIONS, PPE, WAYOUT, Measure, Report, Verdict

DASH = "-"
_LEFT = ("measure", "unit", "target", "verdict")
SHORT = {WAYOUT: "wayout", PPE: "PPE", "loky": "loky"}


def number(value: float | None, unit: str) -> str:
    if value is None:
        return DASH
    if unit in ("jobs/s", "states/s"):
        return f"{value:,.0f}"
    if abs(value) < 1:
        return f"{value:.3f}"
    if abs(value) < 10:
        return f"{value:.2f}"
    if abs(value) < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _ratio(m: Measure) -> str:
    ours, theirs = m.p50(WAYOUT), m.p50(PPE)
    if ours is None or theirs is None or theirs == 0:
        return DASH
    return f"{ours / theirs:.2f}"


def _mark(v: Verdict | None) -> str:
    if v is None:
        return ""
    word = {True: "pass", False: "MISS", None: "n/a"}[v.passed]
    return f"{word} ({v.value})" if v.passed is not None else word


def rows(report: Report) -> list[list[str]]:
    """One row per measure: title, unit, p50/p99 per implementation, ratio, target, verdict."""
    verdicts = {v.measure: v for v in report.verdicts}
    out = []
    for key, m in report.measures.items():
        cells = [m.title, m.unit]
        for impl in IMPLEMENTATIONS:
            s = m.figures.get(impl)
            cells += [number(s.p50 if s else None, m.unit), number(s.p99 if s else None, m.unit)]
        v = verdicts.get(key)
        cells += [_ratio(m), v.target if v else "", _mark(v)]
        out.append(cells)
    return out


HEADERS = ["measure", "unit"] + [
    f"{SHORT[i]} {q}" for i in IMPLEMENTATIONS for q in ("p50", "p99")
] + ["wayout/PPE", "target", "verdict"]


def machine_line(report: Report) -> str:
    m = report.machine
    return (f"{m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
            f"{m['python']}, {m['os']}, start method {m['start_method']}, "
            f"loky {m['loky'] or 'not installed'}, load {m['load_average_1m_at_start']} at start; "
            f"plan {report.plan}, {report.seconds:.0f} s")


def render(report: Report, console: Any | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console(width=200) if not _is_tty() else Console()
    table = Table(title="wayout bench", caption=machine_line(report), show_lines=False)
    for h in HEADERS:
        justify = "left" if h in _LEFT else "right"
        table.add_column(h, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for cells in rows(report):
        style = {"MISS": "bold red", "pass": "green"}.get(cells[-1].split(" ")[0])
        cells = [*cells[:-1], f"[{style}]{cells[-1]}[/]" if style else cells[-1]]
        table.add_row(*cells)
    console.print(table)
    notes = [f"{m.title.strip()}: {m.note}" for m in report.measures.values() if m.note]
    missing = sorted({f"{impl}: {why}" for m in report.measures.values()
                      for impl, why in m.missing.items()})
    for line in notes:
        console.print(f"  note  {line}", highlight=False)
    for line in missing:
        console.print(f"  n/a   {line}", highlight=False)
    for group, error in report.errors.items():
        console.print(f"  [bold red]error[/] {group}: {error}", highlight=False)
    console.print("  ratios are wayout's p50 / ProcessPoolExecutor's p50; for rates the p99 "
                  "column is the 1st percentile (the slow tail)", highlight=False)


def _is_tty() -> bool:
    import sys

    return sys.stdout.isatty()


def markdown(report: Report) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if h in _LEFT else "---:"
                       for h in HEADERS) + "|",
    ]
    for cells in rows(report):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.append(f"Machine: {machine_line(report)}. Ratios are wayout's p50 / "
                 "ProcessPoolExecutor's p50; for rates the p99 column is the 1st percentile.")
    return "\n".join(lines)
