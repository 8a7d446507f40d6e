"""No orphans: when the process that owns a pool dies, even by SIGKILL, its children die too."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from runtime_support import METHODS
from script_support import Script, survivors

pytestmark = pytest.mark.timeout(60)

#: Runs a pool with two ready children and one busy one, prints their pids, waits.
POOL_OWNER = """
import asyncio, sys
import child_funcs as cf
from runtime import Pool
from runtime_support import cfg, transitions_of

async def main(method):
    config = cfg(method, num_idle=2, max_children=3)
    async with Pool(config) as pool:
        job = pool.submit(cf.sleep, 3600)
        await pool.wait_for(lambda st: st.children["ready"] == 2 and st.jobs["running"] == 1,
                            timeout=30)
        pids = pool.status().pids
        (busy,) = [c for c in pids if transitions_of(pool, "child", c)[-1][2] == "busy"]
        print("busy", pids[busy], flush=True)
        print("ready", *(p for c, p in pids.items() if c != busy), flush=True)
        await job

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
"""


def wait_stopped(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while psutil.Process(pid).status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < deadline, f"pid {pid} did not stop"
        time.sleep(0.01)


@pytest.mark.parametrize("method", METHODS)
def test_children_die_with_a_sigkilled_parent(method: str) -> None:
    owner = Script(POOL_OWNER, method)
    descendants: list[psutil.Process] = []
    try:
        busy = int(owner.expect("busy ").split()[1])
        ready = [int(p) for p in owner.expect("ready ").split()[1:]]
        assert len(ready) == 2
        # Everything the owner started: the children, and under forkserver the
        # forkserver and its resource tracker too.
        descendants = psutil.Process(owner.pid).children(recursive=True)
        assert {busy, *ready} <= {p.pid for p in descendants}
        # A stopped child reads no EOF: only the kernel's parent-death signal
        # can end it (under forkserver, once the forkserver exits in turn).
        stopped = ready[0]
        os.kill(stopped, signal.SIGSTOP)
        wait_stopped(stopped)
        os.kill(owner.pid, signal.SIGKILL)
        owner.proc.wait(timeout=10)
        # The kernel acts at once; the bound is generous for a loaded machine.
        left = survivors(descendants, timeout=5.0)
        assert not left, f"outlived their SIGKILLed parent: {left}"
    finally:
        # A failed test's survivors die first: they hold the owner's pipes.
        for proc in survivors(descendants, timeout=0):
            proc.kill()
        owner.kill()
