"""wayout's forkserver: deaf to group signals itself, but not its other children.

wayout starts the forkserver with SIGINT/SIGTERM blocked (a group SIGTERM must
not kill every child mid-drain). Every process the forkserver forks inherits
that mask, so ``runtime.forkserver_preload`` unblocks it after each fork:
otherwise another library's forkserver workers (here a ProcessPoolExecutor)
could never be terminated and its shutdown would hang. Runs in a fresh
interpreter, because a forkserver started by earlier tests is used as it is.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import asyncio, concurrent.futures, multiprocessing as mp, os, signal

    from runtime import Pool, PoolConfig

    def blocked(_=None):
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return sorted(int(s) for s in mask & {signal.SIGINT, signal.SIGTERM})

    def forkserver_blocked():
        server = mp.forkserver._forkserver._forkserver_pid
        status = open(f"/proc/{server}/status").read()
        line = next(x for x in status.splitlines() if x.startswith("SigBlk:"))
        bits = int(line.split()[1], 16)
        return sorted(int(s) for s in (signal.SIGINT, signal.SIGTERM) if bits >> (s - 1) & 1)

    async def main():
        async with Pool(PoolConfig(num_idle=1, start_method="forkserver")) as pool:
            print("child", await pool.run(blocked))
            ctx = mp.get_context("forkserver")
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
                print("other", ex.submit(blocked).result())
                worker = next(iter(ex._processes.values()))
                worker.terminate()
                worker.join(10)
                # it died (-15, or 255 when the forkserver reports it mid-start)
                print("terminated", worker.exitcode is not None)
            print("server", forkserver_blocked())

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.timeout(60)
def test_forkserver_children_get_the_default_signal_mask(tmp_path: Path) -> None:
    script = tmp_path / "forkserver_mask.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=50)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "child []", "other []", "terminated True", "server [2, 15]",
    ]
