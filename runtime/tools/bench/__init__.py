"""``wayout bench``: wayout measured side by side with ProcessPoolExecutor and loky.

One module per group of measures (``latency``, ``faults``, ``scale``,
``checker``), each returning ``results.Measure`` values; ``runner`` runs the
groups a ``plan.Plan`` asks for in one process, ``targets`` judges the figures
against the goals of issue 8, and ``table`` prints them with ``rich``.

Functions the pools run live in ``runtime.tools.bench.jobs``: a job must be a
module-level function of an importable module under forkserver and spawn.
This package imports nothing heavy at import time, so that a child unpickling
a bench job pays only for ``jobs``; ``loky`` (the ``bench`` extra) is
imported only when its measures run.
"""
