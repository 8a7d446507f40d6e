"""Results as text and as pictures (DOT source). Pure: the caller writes files.

``format_trace`` prints a counterexample as numbered events with the state
after each; ``trace_dot`` draws the same path as a graphviz digraph, one box
per state, the failing state highlighted (for a wedge, the path goes on to a
state of the trap the system can never leave, drawn dark; for a hot loop,
the edge back to where the loop starts). ``picture_name`` names the picture
after the design and its parameters. Rendering the DOT to SVG needs
graphviz's ``dot`` binary and is the CLI's job.
"""

from __future__ import annotations

import re

import graphviz

from models.design import NO_HOT_LOOP, SAFETY, WAY_OUT
from models.explorer import FINITE, Result, Stats, Violation

#: What each property says, in one line, for reports.
PROPERTY_DOC = {
    SAFETY: "every reachable state keeps the safety invariants",
    WAY_OUT: "from every reachable state a quiescent state is reachable",
    NO_HOT_LOOP: "no cycle without time passing spawns processes",
    "honest_availability": "whenever the pool says it is available, a job can still be served",
    "availability_returns": "a serving pool that says it is unavailable can become available",
    "backoff_ends": "a pool backing off gets back to running once spawns succeed",
    FINITE: "the state space is finite: no counter or queue grows without bound",
}


def format_stats(stats: Stats) -> str:
    rate = stats.states_per_second
    done = "" if stats.complete else f" ({stats.stopped or 'stopped early'})"
    return (f"{stats.states:,} states, {stats.transitions:,} transitions, depth {stats.depth}, "
            f"{stats.seconds:.2f} s, {rate:,.0f} states/s{done}")


def format_trace(v: Violation) -> str:
    """The counterexample of ``v`` as numbered lines: event, then the state after it."""
    lines = []
    trace = v.trace
    for i, step in enumerate(trace.steps + trace.onward):
        marks = []
        if i == trace.failing:
            marks.append("<-- fails here" if trace.loop_start is None else "<-- loop starts here")
            if trace.trapped is not None and trace.trapped != i:
                marks.append("(no way out from here on)")
        if i == trace.trapped:
            marks.append("<-- trapped: the system never leaves it")
        if step.time_passed:
            marks.append("(time passes)")
        if step.spawns:
            marks.append(f"(spawns {step.spawns})")
        label = "initial state" if step.label is None else step.label
        mark = ("  " + " ".join(marks)) if marks else ""
        lines.append(f"{i:3d}. {label}{mark}")
        for fact in step.state.splitlines():
            lines.append(f"       | {fact}")
        for broken in step.broken:
            lines.append(f"       ! {broken}")
    if trace.loop_start is not None:
        lines.append(f"     ... and back to state {trace.loop_start}, forever, "
                     "with no time passing")
    return "\n".join(lines)


def format_violation(v: Violation) -> str:
    head = f"{v.property} violated: {v.message}"
    doc = PROPERTY_DOC.get(v.property)
    if doc:
        head += f"\n  (property: {doc})"
    parts = [head]
    parts.extend(f"  {line}" for line in v.detail)
    trace = v.trace
    if trace.onward:
        parts.append(f"  shortest trace ({trace.failing} events to the first state with no way "
                     f"out, {len(trace.onward)} more into the trap):")
    else:
        parts.append(f"  shortest trace ({len(trace.steps) - 1} events):")
    parts.append(format_trace(v))
    return "\n".join(parts)


def verdict(result: Result) -> str:
    """One word for the summary table."""
    if result.expected is None:
        if not result.stats.complete:
            return "INCOMPLETE"
        return "verified" if not result.violations else "VIOLATED"
    return "caught" if result.as_expected else "NOT CAUGHT"


def format_result(result: Result, *, traces: bool = True) -> str:
    lines = [f"{result.design}: {result.title}"]
    if result.parameters:
        lines.append(f"  bounds: {result.parameters}")
    lines.append(f"  explored: {format_stats(result.stats)}")
    lines.append(f"  checked: {', '.join(result.checked)}")
    expected = "passes every property" if result.expected is None else f"breaks {result.expected}"
    lines.append(f"  expected: {expected}; result: {verdict(result)}")
    if traces:
        for v in result.violations:
            lines.append("")
            lines.append(format_violation(v))
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def trace_dot(result: Result, v: Violation) -> str:
    """DOT source of ``v``'s trace: the states along the path, the failing one highlighted."""
    g = graphviz.Digraph(
        name=f"counterexample_{result.design}".replace("-", "_"),
        graph_attr={
            "rankdir": "TB",
            "label": _escape(f"{result.design}: {v.property} violated\n{v.message}"),
            "labelloc": "t",
            "fontname": "Helvetica",
            "fontsize": "12",
        },
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white",
                   "fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    trace = v.trace
    for i, step in enumerate(trace.steps + trace.onward):
        text = f"#{i}\n{step.state}"
        if step.broken:
            text += "\n" + "\n".join(f"! {b}" for b in step.broken)
        attrs = {}
        if i == trace.trapped:
            text += "\nTRAPPED: the system never leaves it"
            attrs = {"fillcolor": "#e6a19a", "color": "#7b241c", "penwidth": "3"}
        elif i == trace.failing:
            text += "\n(no way out from here on)" if trace.trapped is not None else ""
            attrs = {"fillcolor": "#f8c9c4", "color": "#c0392b", "penwidth": "2"}
        elif trace.trapped is not None and i > trace.failing:
            attrs = {"fillcolor": "#fbe3e0"}
        elif trace.loop_start is not None and i > trace.loop_start:
            attrs = {"fillcolor": "#fde9c8"}
        g.node(f"s{i}", _escape(text).replace("\n", "\\l") + "\\l", **attrs)
        if step.label is not None:
            label = step.label + (" (time passes)" if step.time_passed else "")
            g.edge(f"s{i - 1}", f"s{i}", label=_escape(label))
    if v.detail:
        # What the failing state can still do (a wedge is not a deadlock), and the like.
        g.node("detail", _escape("\n".join(v.detail)).replace("\n", r"\l") + r"\l",
               shape="note", fillcolor="#fff8dc")
        noted = trace.failing if trace.trapped is None else trace.trapped
        g.edge(f"s{noted}", "detail", style="dotted", arrowhead="none")
    if trace.loop_start is not None:
        last = len(trace.steps) - 1
        g.edge(f"s{last}", f"s{trace.loop_start}", label="same state: repeats forever",
               style="dashed", color="#c0392b", constraint="false")
    return str(g.source)


def picture_name(design: str, parameters: str = "") -> str:
    """The file name of a counterexample's picture: the design and its parameters.

    Two runs of one design with other parameters get other names
    (``counterexample-z1-agents-js-1748-jobs2-crashes1.svg``); only letters,
    digits, ``_``, ``.`` and ``-`` are kept.
    """
    slug = _slug(parameters.replace("=", ""))
    return f"counterexample-{_slug(design) or 'design'}" + (f"-{slug}" if slug else "") + ".svg"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.")
