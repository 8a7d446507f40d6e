"""wayout's forkserver: deaf to group signals itself, but not its other children.

wayout starts the forkserver with SIGINT/SIGTERM blocked (a group SIGTERM must
not kill every child mid-drain). Every process the forkserver forks inherits
that mask, so ``runtime.forkserver_preload`` unblocks it after each fork:
otherwise another library's forkserver workers (here a ProcessPoolExecutor)
could never be terminated and its shutdown would hang. Runs in a fresh
interpreter, because a forkserver started by earlier tests is used as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from script_support import survivors


def run_script(path: Path, text: str, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``text`` as the main script ``path`` in a fresh interpreter (and so a
    fresh forkserver); it must exit 0."""
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                          timeout=50, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


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
    done = run_script(tmp_path / "forkserver_mask.py", SCRIPT)
    assert done.stdout.splitlines() == [
        "child []", "other []", "terminated True", "server [2, 15]",
    ]


MAIN_SCRIPT = textwrap.dedent("""
    import asyncio, os, sys

    with open(os.environ["IMPORTS_LOG"], "a") as log:
        log.write(f"{__name__} {os.getpid()} {sys.argv[1:]}\\n")

    def triple(x):  # a job defined in the main script
        return 3 * x

    async def main():
        from runtime import Pool, PoolConfig

        async with Pool(PoolConfig(num_idle=3, max_children=3,
                                   start_method="forkserver")) as pool:
            print(sorted(await asyncio.gather(*(pool.run(triple, i) for i in range(6)))))

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.timeout(60)
def test_the_main_script_runs_once_in_the_forkserver_not_once_per_child(
        tmp_path: Path) -> None:
    # multiprocessing means to preload __main__ in the forkserver, but before
    # CPython's fix for gh-137996 never does, so each child ran the script
    # again before starting (60-100 ms each). runtime.forkserver_preload does it.
    imports = tmp_path / "imports.log"
    done = run_script(tmp_path / "main_script.py", MAIN_SCRIPT, "--flag",
                      env={**os.environ, "IMPORTS_LOG": str(imports)})
    assert done.stdout.split("\n")[0] == "[0, 3, 6, 9, 12, 15]"
    lines = imports.read_text(encoding="utf-8").splitlines()
    # The parent runs it as __main__; the forkserver imports it once as
    # __mp_main__, with the parent's arguments; no child imports it again.
    assert [line.split(" ", 1)[0] for line in lines] == ["__main__", "__mp_main__"]
    assert all(line.endswith("['--flag']") for line in lines)


UNGUARDED_SCRIPT = textwrap.dedent("""
    import asyncio

    from runtime import Pool, PoolConfig

    async def main():
        config = PoolConfig(num_idle=1, start_method="forkserver", start_timeout=3.0,
                            spawn_timeout=3.0, max_restarts=1)
        async with Pool(config) as pool:
            status = pool.status()
            print("available", status.available, status.children.get("ready", 0))

    asyncio.run(main())  # no `if __name__ == "__main__":` guard
""")


@pytest.mark.timeout(60)
def test_a_main_script_that_starts_a_pool_at_import_fails_clearly_and_does_not_hang(
        tmp_path: Path) -> None:
    # The forkserver's import of such a script would start a pool inside it;
    # each child's import would start one in the child. Both refuse, say why,
    # and the parent's pool comes up unavailable instead of wedging.
    done = run_script(tmp_path / "unguarded.py", UNGUARDED_SCRIPT)
    assert done.stdout.strip() == "available False 0"
    assert "start pools under `if __name__ == '__main__':`" in done.stderr



BLOCKING_IMPORT_SCRIPT = textwrap.dedent("""
    import asyncio, os, time

    import runtime.process
    from runtime import Pool, PoolConfig

    if __name__ == "__mp_main__" and os.getppid() == int(os.environ.get("POOL_PID", "0")):
        # Imported by the forkserver (whose parent is the pool's process): block,
        # as a script that does its work at import would.
        time.sleep(3600)

    def double(x):
        return 2 * x

    async def main():
        os.environ["POOL_PID"] = str(os.getpid())
        runtime.process.MAIN_IMPORT_BOUND_S = 1.0
        async with Pool(PoolConfig(num_idle=1, start_method="forkserver")) as pool:
            print(await pool.run(double, 21))

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.timeout(60)
def test_a_main_script_that_blocks_at_import_cannot_keep_the_forkserver_from_serving(
        tmp_path: Path) -> None:
    # The forkserver serves no fork before its preload is done: an import of the
    # main script that never returns would block every start. It is cut off at
    # MAIN_IMPORT_BOUND_S, and the children import the script themselves.
    done = run_script(tmp_path / "blocking_import.py", BLOCKING_IMPORT_SCRIPT)
    assert done.stdout.strip() == "42"


SLOW_IMPORT_SCRIPT = textwrap.dedent("""
    import asyncio, os

    import runtime.process
    from runtime import Pool, PoolConfig

    IMPORTING, GO, DONE = (os.environ[k] for k in ("IMPORTING_FIFO", "GO_FIFO", "DONE_FILE"))

    if __name__ == "__mp_main__" and os.getppid() == int(os.environ.get("POOL_PID", "0")):
        # Imported by the forkserver: a slow import that only the pool's event
        # loop can finish, by answering on GO.
        with open(IMPORTING, "wb") as fifo:
            fifo.write(b"!")
        with open(GO, "rb") as fifo:
            fifo.read(1)
        with open(DONE, "w") as done:
            done.write("done")

    def double(x):
        return 2 * x

    async def answer():
        loop = asyncio.get_running_loop()
        fd = os.open(IMPORTING, os.O_RDONLY | os.O_NONBLOCK)
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        await readable.wait()
        loop.remove_reader(fd)
        os.close(fd)
        with open(GO, "wb") as fifo:
            fifo.write(b"!")

    async def main():
        os.environ["POOL_PID"] = str(os.getpid())
        runtime.process.MAIN_IMPORT_BOUND_S = 5.0
        answering = asyncio.create_task(answer())
        async with Pool(PoolConfig(num_idle=1, start_method="forkserver")) as pool:
            print(await pool.run(double, 21))
        answering.cancel()
        print(open(DONE).read() if os.path.exists(DONE) else "cut off")

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.timeout(60)
def test_the_event_loop_runs_while_the_forkserver_imports_the_main_script(
        tmp_path: Path) -> None:
    # The forkserver's import of the main script finishes only if the pool's
    # event loop answers it: a pool start that waited for the forkserver on the
    # loop (its first Process.start) would leave it to be cut off by the bound.
    fifos = {name: tmp_path / name for name in ("importing", "go")}
    for fifo in fifos.values():
        os.mkfifo(fifo)
    env = {**os.environ, "IMPORTING_FIFO": str(fifos["importing"]),
           "GO_FIFO": str(fifos["go"]), "DONE_FILE": str(tmp_path / "done")}
    done = run_script(tmp_path / "slow_import.py", SLOW_IMPORT_SCRIPT, env=env)
    assert done.stdout.split() == ["42", "done"]


STOPPED_FORKSERVER_SCRIPT = textwrap.dedent("""
    import asyncio, os, signal

    with open(os.environ["IMPORTS_LOG"], "a") as log:
        log.write(f"{__name__} {os.getpid()} {os.getppid()}\\n")

    def stop_forkserver():
        os.kill(os.getppid(), signal.SIGSTOP)  # a job stops its parent: the forkserver
        return os.getppid()

    def double(x):
        return 2 * x

    async def main():
        import multiprocessing.forkserver as fs
        from runtime import Pool, PoolConfig

        # One child, one job per child: the stopped forkserver's child is
        # replaced once it is gone (abandoned: its exit comes through the
        # forkserver), and nothing was spawned before the forkserver stopped.
        config = PoolConfig(num_idle=1, max_children=1, start_method="forkserver",
                            max_jobs_per_child=1, spawn_timeout=1.0, close_timeout=0.5,
                            kill_timeout=2.0, backoff_initial=0.1, backoff_max=0.5)
        async with Pool(config) as pool:
            stopped = await pool.run(stop_forkserver)
            print("stopped", stopped == fs._forkserver._forkserver_pid)
            print(await asyncio.wait_for(pool.run(double, 21), 30))
            print("replaced", fs._forkserver._forkserver_pid not in (None, stopped))
            print("spawn timeouts", any(t.source == "spawned" and t.event == "timeout"
                                        for t in pool.transitions() if t.kind == "child"))

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.timeout(60)
def test_a_stopped_forkserver_is_killed_at_spawn_timeout_and_replaced_with_the_main_preloaded(
        tmp_path: Path) -> None:
    # A job SIGSTOPs the forkserver; the next start waits in its handshake
    # forever. It must not wait on the event loop: spawn_timeout fires, the
    # forkserver is killed, a new one starts, imports the main script once
    # again (no child imports it), and the job queued meanwhile runs.
    imports = tmp_path / "imports.log"
    done = run_script(tmp_path / "stopped_forkserver.py", STOPPED_FORKSERVER_SCRIPT,
                      env={**os.environ, "IMPORTS_LOG": str(imports)})
    assert done.stdout.splitlines() == ["stopped True", "42", "replaced True",
                                        "spawn timeouts True"]
    assert "killing the forkserver" in done.stderr
    lines = [line.split() for line in imports.read_text(encoding="utf-8").splitlines()]
    (script_pid,) = [pid for name, pid, _ in lines if name == "__main__"]
    forkservers = [pid for name, pid, parent in lines if name == "__mp_main__"]
    # Two forkservers (the stopped one and its replacement), each the script's
    # child; no other process imported the script.
    assert len(forkservers) == 2 and len(set(forkservers)) == 2, lines
    assert all(parent == script_pid for name, _, parent in lines if name == "__mp_main__"), lines
    assert len(lines) == 3


KILLED_WITH_FORKSERVER_SCRIPT = textwrap.dedent("""
    import asyncio, os, signal, subprocess, sys, time

    SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"

    def start_then_stop_forkserver():
        # A grandchild in a session of its own, then the forkserver stopped.
        sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER], start_new_session=True)
        os.kill(os.getppid(), signal.SIGSTOP)
        print("grandchild", sleeper.pid, flush=True)
        with open(os.environ["STOPPED_FIFO"], "wb") as fifo:
            fifo.write(b"!")
        time.sleep(3600)

    async def stopped():
        loop = asyncio.get_running_loop()
        fd = os.open(os.environ["STOPPED_FIFO"], os.O_RDONLY | os.O_NONBLOCK)
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        await readable.wait()
        loop.remove_reader(fd)
        os.close(fd)

    def double(x):
        return 2 * x

    async def main():
        from fsm.errors import ChildDied
        from runtime import Pool, PoolConfig

        # No idle child: the second job's spawn is the first after the stop.
        config = PoolConfig(num_idle=0, max_children=2, start_method="forkserver",
                            spawn_timeout=1.0, close_timeout=0.5, kill_timeout=2.0,
                            backoff_initial=0.1, backoff_max=0.5)
        async with Pool(config) as pool:
            waiting = asyncio.create_task(stopped())
            first = pool.submit(start_then_stop_forkserver)
            await asyncio.wait_for(waiting, 20)
            second = pool.submit(double, 21)
            try:
                await first
            except ChildDied as exc:
                print("first", type(exc).__name__, flush=True)
            print(await asyncio.wait_for(second, 30), flush=True)

    if __name__ == "__main__":
        asyncio.run(main())
""")


@pytest.mark.timeout(60)
def test_the_children_of_a_killed_forkserver_are_killed_with_what_they_started(
        tmp_path: Path) -> None:
    # A forkserver that does not answer is killed; its children would die by
    # PR_SET_PDEATHSIG, leaving their own descendants running. The pool kills
    # them itself first, descendants included.
    fifo = tmp_path / "stopped"
    os.mkfifo(fifo)
    done = run_script(tmp_path / "killed_with_forkserver.py", KILLED_WITH_FORKSERVER_SCRIPT,
                      env={**os.environ, "STOPPED_FIFO": str(fifo)})
    lines = done.stdout.splitlines()
    assert lines[1:] == ["first ChildDied", "42"], done.stdout
    grandchild = psutil.Process(int(lines[0].split()[1]))
    try:
        assert not survivors([grandchild], 5.0), "the grandchild outlived its child"
    finally:
        if not survivors([grandchild], 0):
            grandchild.kill()
