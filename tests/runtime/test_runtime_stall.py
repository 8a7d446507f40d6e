"""The parent's own stall, with real processes (issue 15 item 1).

The fault injected is the one users cause: code that blocks the event loop
(here ``time.sleep`` on the loop's thread, far longer than ``ping_timeout``),
while children are mid-job. Nobody reads the children's pongs or results
meanwhile. Afterwards the core must see that it was driven late, ping the
children again instead of killing them, and say so once; the jobs complete.
"""

from __future__ import annotations

import logging
import re
import time

import child_funcs as cf
import pytest
from runtime_support import cfg, pool_test, ready, wait_status, within

from runtime import Pool

#: How long the test blocks the loop: 3x ping_timeout, 7x the stall threshold.
STALL = 3.0


@pytest.mark.timeout(90)
@pool_test
async def test_a_blocked_event_loop_kills_no_child_and_the_running_jobs_complete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wayout")
    config = cfg("fork", num_idle=4, max_children=4, ping_interval=0.2, ping_timeout=1.0)
    assert config.stall_threshold == pytest.approx(0.4)
    async with Pool(config) as pool:
        await wait_status(pool, ready(4), 30)
        # Two children mid-job, two idle; the jobs end during the stall, so
        # their results wait unread in the sockets with the pongs.
        jobs = [pool.submit(cf.sleep, 1.0) for _ in range(2)]
        await wait_status(pool, lambda st: st.jobs["running"] == 2, 30)
        time.sleep(STALL)  # the fault: the event loop is blocked (not synchronisation)
        assert [await within(20, job) for job in jobs] == [1.0, 1.0]
        # Serving on, with the same four children.
        assert await within(20, pool.run(cf.add, 1, 2)) == 3
        failed = [t for t in pool.transitions() if t.kind == "child" and t.dest == "failed"]
        assert failed == []
        status = pool.status()
        assert status.children["ready"] == 4
        assert status.restart_budget == config.max_restarts
    stalls = [r.getMessage() for r in caplog.records
              if r.getMessage().startswith("the supervisor stalled")]
    # Exactly one names our stall (a loaded machine may add a short one of its own).
    ours = [m for m in stalls if _not_driven_for(m) >= STALL - 0.1]
    assert len(ours) == 1, stalls
    assert "instead of blaming them" in ours[0]
    assert "renewing the deadlines of 4 children and pinging the 4 ready or busy" in ours[0]


def _not_driven_for(message: str) -> float:
    match = re.search(r"not driven for ([0-9.]+)s", message)
    assert match is not None, message
    return float(match.group(1))
