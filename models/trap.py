"""Where a wedged system ends up: the trap after the first state with no way out.

The first state from which no goal state is reachable is often not where the
harm shows: a pool with one worker and three queued tasks still makes progress,
only never to quiescence; the wedge (no worker, a task queued forever) comes
a few events later. The states that cannot reach the goal are closed under
successors, so the system, once among them, stays among them; and somewhere
among them it enters a *trap*: a bottom strongly connected component, a set
of states it can never leave, where every possible event leads back into the
set (a single state whose every event leads back to itself, or none at all,
is one too).

``trap_path`` finds, from the first stuck state, the shortest path to the
nearest state of such a trap. Pure graph work over the explorer's recorded
edges: it knows nothing of designs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from models.explorer import _strongly_connected


def trap_path(n: int, src: Sequence[int], dst: Sequence[int], can_reach: Sequence[int],
              start: int) -> tuple[list[int], int]:
    """The shortest path from ``start`` to a state of a trap, and the trap's size.

    ``src``/``dst`` are the edges of a graph of ``n`` states; ``can_reach[i]``
    says whether state ``i`` can still reach the goal (``start`` cannot). The
    path begins with ``start`` and ends in a bottom strongly connected
    component of the states that cannot reach the goal; it is ``[start]``
    when ``start`` is in one already.
    """
    adj: dict[int, list[int]] = {}
    for s, d in zip(src, dst, strict=True):
        if not can_reach[s] and not can_reach[d]:
            adj.setdefault(s, []).append(d)
    # Breadth first from start: the states the wedge can still move through.
    prev: dict[int, int] = {start: -1}
    order = [start]
    todo = deque([start])
    while todo:
        x = todo.popleft()
        for y in adj.get(x, ()):
            if y not in prev:
                prev[y] = x
                order.append(y)
                todo.append(y)
    comp = _strongly_connected({x: adj.get(x, []) for x in order})
    leaves = set(comp.values())
    for x in order:
        for y in adj.get(x, ()):
            if comp[y] != comp[x]:
                leaves.discard(comp[x])
    target = next(x for x in order if comp[x] in leaves)  # some bottom component exists
    size = sum(1 for x in order if comp[x] == comp[target])
    path = [target]
    while path[-1] != start:
        path.append(prev[path[-1]])
    path.reverse()
    return path, size
