"""Deadlines due at the same instant, in every order that can differ in effect.

The core fires the deadlines of one instant in its own order (children,
then jobs, then the pool). In production two deadlines of one instant are
rarely exactly equal floats (``t0 + (close + kill)`` against ``(t0 + close) +
kill``), so either may come first: the checker must not lean on that order.
``DeadlineReached.order`` names the records to fire first; ``tie_orders``
gives the orders worth exploring.

Every permutation of k tied deadlines is k! orders; most of them are the same
state reached twice. A partial-order reduction keeps one order per class of
orders that can differ: two deadlines are *dependent* when firing one can
change what the other does, read from what each timeout touches
(``fsm.core``: ``_child_timeout``, ``_job_timeout``, ``_pool_timeout``):

* a child's timeout touches the child and the job it holds (a kill, an
  abandonment that requeues or fails that job); a job's timeout touches the
  job and its child (the kill of a lost ack or of a cancel that timed out,
  the stop of a running job past its timeout);
* two requeues touch the head of the queue, whose order they decide (a
  job's ``unacked`` timeout, a ``failed`` child's abandonment with a job);
  removing a queued job (its ``queue_timeout``) commutes with both;
* failures are appended at the same instant (equal times: the order of the
  appends is invisible), and ``spawn_proven`` only ever becomes False here;
* the pool's timeout touches everything while ``draining`` (it closes: every
  job settled, every child stopped or killed) or ``backing_off`` (it clears
  the failures that children's timeouts append); in ``starting``,
  ``running`` and ``closing`` it changes only the pool's own state (the
  warm-up and refill run in ``_reconcile``, after every deadline of the event);
* the heartbeat fires after them all; its pings commute with every timeout
  (a ping to a child that the same instant kills or stops is forgotten by
  the world either way), so it keeps its place.

Deadlines in different connected components of "dependent" touch disjoint
records, so every interleaving of fixed orders within the components ends
in one state: the orders explored are every permutation within each
component (components of one deadline need none), the components in the
core's order. Text differs between those interleavings (a log line, a
reason), and no check reads it. tests/models/test_ties.py checks that the
reduced orders reach exactly the states that every permutation reaches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from fsm import events as ev
from fsm.core import SupervisorCore

#: Pool states whose timeout touches every record (it closes, or clears the failures).
_POOL_TOUCHES_ALL = frozenset({"draining", "backing_off"})
_ALL = ("all", 0)
_REQUEUE = ("requeue", 0)


def _touches(core: SupervisorCore, key: ev.DeadlineKey) -> set[tuple[str, int]]:
    kind, ident = key
    if kind == "child":
        child = core.children[ident]
        touched: set[tuple[str, int]] = {("child", ident)}
        if child.job is not None:
            touched.add(("job", child.job))
            if child.state == "failed":
                touched.add(_REQUEUE)
        return touched
    if kind == "job":
        job = core.jobs[ident]
        touched = {("job", ident)}
        if job.child is not None:
            touched.add(("child", job.child))
        if job.state == "unacked":
            touched.add(_REQUEUE)
        return touched
    return {_ALL} if core.pool.state in _POOL_TOUCHES_ALL else {("pool", 0)}


def components(core: SupervisorCore, due: Sequence[ev.DeadlineKey]) -> list[list[ev.DeadlineKey]]:
    """The due deadlines grouped by dependence, each group and the groups in the core's order."""
    touched = [_touches(core, k) for k in due]
    parent = list(range(len(due)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(due)), 2):
        if _ALL in touched[i] or _ALL in touched[j] or touched[i] & touched[j]:
            parent[root(j)] = root(i)
    groups: dict[int, list[ev.DeadlineKey]] = {}
    for i, key in enumerate(due):
        groups.setdefault(root(i), []).append(key)
    return list(groups.values())


def tie_orders(core: SupervisorCore, at: float) -> Iterator[tuple[ev.DeadlineKey, ...]]:
    """The orders of the deadlines due at ``at`` worth exploring; ``()`` alone when
    the core's own order is the only one that can matter."""
    due = core.due(at)
    if len(due) < 2:
        yield ()
        return
    groups = [g for g in components(core, due) if len(g) > 1]
    if not groups:
        yield ()
        return
    for parts in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield tuple(k for part in parts for k in part)


def every_order(core: SupervisorCore, at: float) -> Iterator[tuple[ev.DeadlineKey, ...]]:
    """Every permutation of the deadlines due at ``at`` (no reduction: for tests)."""
    due = core.due(at)
    if len(due) < 2:
        yield ()
        return
    yield from itertools.permutations(due)
