"""Running models: what ``wayout check`` and ``wayout demo`` share.

``models`` explores and returns data; this module runs the explorations (in
parallel processes when there are several, with a ``rich`` progress display)
and writes each counterexample's picture, which ``models.report`` draws as DOT.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from models.design import Design
    from models.explorer import Progress, Result, Violation
    from models.registry import Bounds

#: A generous bound: wayout's models have tens of thousands of states.
DEFAULT_MAX_STATES = 3_000_000
#: How often (in expanded states) a model reports progress.
PROGRESS_EVERY = 2_000

# ----------------------------------------------------------------------------


def run_models(names: Sequence[str], bounds: Bounds, *, workers: int, max_states: int,
               console: Console) -> list[Result]:
    """Explore each named model; in ``workers`` processes when there are several."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as ProgressBars

    columns = (TextColumn("{task.description:<26}"), BarColumn(bar_width=None),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with ProgressBars(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        tasks = {n: progress.add_task(n, total=None, info="waiting") for n in names}

        def show(name: str, info: str, done: bool = False) -> None:
            if done:
                progress.update(tasks[name], info=info, total=1, completed=1)
            else:
                progress.update(tasks[name], info=info)

        if workers <= 1 or len(names) <= 1:
            results = []
            for name in names:
                def report(p: Progress, name: str = name) -> None:
                    show(name, _info(p))

                result = _explore(name, bounds, max_states, report)
                show(name, _done_info(result), done=True)
                results.append(result)
            return results
        return _run_parallel(names, bounds, workers, max_states, show)


def run_design(design: Design[Any], *, max_states: int, console: Console) -> Result:
    """Explore one design instance (a user's own: ``wayout check --design``) in this process."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as ProgressBars

    from models.explorer import explore

    columns = (TextColumn("{task.description:<26}"), BarColumn(bar_width=None),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with ProgressBars(*columns, console=console, transient=True,
                      disable=not console.is_terminal) as progress:
        task = progress.add_task(design.name, total=None, info="exploring")
        result = explore(design, max_states=max_states,
                         progress=lambda p: progress.update(task, info=_info(p)),
                         progress_every=PROGRESS_EVERY)
        progress.update(task, info=_done_info(result), total=1, completed=1)
    return result


def _run_parallel(names: Sequence[str], bounds: Bounds, workers: int, max_states: int,
                  show: Callable[..., None]) -> list[Result]:
    # "spawn": the parent may run rich's refresh thread, which fork would copy.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(
            max_workers=min(workers, len(names)), mp_context=ctx) as pool:
        updates = manager.Queue()
        futures: dict[str, Future[Result]] = {
            name: pool.submit(_explore_reporting, name, bounds, max_states, updates)
            for name in names
        }
        pending = set(futures)
        while pending:
            try:
                name, info = updates.get(timeout=0.1)
                show(name, info)
            except queue_module.Empty:
                pass
            for name in [n for n in pending if futures[n].done()]:
                pending.discard(name)
                show(name, _done_info(futures[name].result()), done=True)
        return [futures[name].result() for name in names]


def _explore_reporting(name: str, bounds: Bounds, max_states: int, updates: Any) -> Result:
    """Runs in a worker process: explore one model, sending progress lines back."""
    return _explore(name, bounds, max_states, lambda p: updates.put((name, _info(p))))


def _explore(name: str, bounds: Bounds, max_states: int,
             progress: Callable[[Progress], None]) -> Result:
    from models import registry
    from models.explorer import explore

    design = registry.build(name, bounds)
    return explore(design, max_states=max_states, progress=progress,
                   progress_every=PROGRESS_EVERY)


def _info(p: Progress) -> str:
    rate = p.states / p.seconds if p.seconds > 0 else 0.0
    return (f"{p.states:,} states, {p.transitions:,} transitions, depth {p.depth}, "
            f"frontier {p.frontier:,}, {rate:,.0f} states/s")


def _done_info(r: Result) -> str:
    return f"{r.stats.states:,} states: " + (", ".join(sorted(r.found)) or "no violation")


def violations_to_show(result: Result) -> list[Violation]:
    """The expected violation first (zoo), then any unexpected one."""
    expected = [v for v in result.violations if v.property == result.expected]
    if result.expected is None:
        return list(result.violations)
    return expected


def write_counterexample(out: Path, result: Result, v: Violation, parameters: str | None = None,
                         ) -> str:
    """Render ``v`` to ``out/<models.report.picture_name>`` (DOT if graphviz is missing).

    The name carries the design and its parameters (``parameters``, else the
    result's own), so runs with other parameters do not overwrite each other.
    """
    import graphviz

    from models.report import picture_name, trace_dot

    out.mkdir(parents=True, exist_ok=True)
    source = trace_dot(result, v)
    svg = out / picture_name(result.design, result.parameters if parameters is None
                             else parameters)
    try:
        data = graphviz.Source(source).pipe(format="svg")
    except graphviz.ExecutableNotFound:
        dot = svg.with_suffix(".dot")
        dot.write_text(source, encoding="utf-8")
        return f"wrote {dot} (graphviz 'dot' not found: install graphviz for SVG)"
    svg.write_bytes(data)
    return f"wrote {svg}"
