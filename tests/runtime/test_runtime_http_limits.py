"""runtime.http cannot starve the pool: request deadlines, a connection cap, and
file descriptors kept for the pool, against a real local client holding
half-sent requests (loopback only, a bounded number of them)."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
import time

import pytest
from runtime_support import cfg, pool_test, within
from script_support import ROOT, TESTS

from runtime import Pool
from runtime.http import serve

HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"  # the headers never end


async def half_sent(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HALF_REQUEST)
    await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read() == b""  # EOF, and no response
    except ConnectionResetError:
        return True


@pytest.mark.timeout(30)
@pool_test
async def test_half_sent_requests_are_cut_off_and_connections_are_capped() -> None:
    async with Pool(cfg("fork", num_idle=1, max_children=2)) as pool, \
            await serve(pool, request_timeout=0.5, max_connections=3) as server:
        held = [await half_sent(server.port) for _ in range(3)]
        extra = [await half_sent(server.port) for _ in range(2)]
        # Over the cap: closed as soon as accepted.
        assert all(await within(5, asyncio.gather(*(closed_by_server(r) for r, _ in extra))))
        assert server.refused == 2
        # Within the cap: closed once request_timeout passed without a whole request.
        assert all(await within(5, asyncio.gather(*(closed_by_server(r) for r, _ in held))))
        assert server.timed_out == 3
        # A body that never arrives whole is cut off too.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n"
                     b"\r\n" + b"x" * 10)
        await writer.drain()
        answer = await within(5, reader.read())  # the 405, then EOF well before 5 s
        assert answer.startswith(b"HTTP/1.1 405")
        # And the server still answers whole requests.
        for _, w in [*held, *extra, (reader, writer)]:
            w.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HALF_REQUEST + b"Connection: close\r\n\r\n")
        assert (await within(5, reader.read())).startswith(b"HTTP/1.1 200")
        writer.close()
        assert server.connections <= 1


#: A pool and its HTTP server under a soft limit of LIMIT file descriptors.
LIMIT = 200
STARVED_SCRIPT = f"""
import asyncio, os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, ({LIMIT}, hard))

import child_funcs as cf
import runtime.http
from fsm.errors import ChildDied
from runtime import Pool
from runtime_support import cfg

runtime.http.REQUEST_TIMEOUT = 3.0
runtime.http.MAX_CONNECTIONS = 10_000  # the file descriptor reserve must hold here

async def main():
    loop = asyncio.get_running_loop()
    config = cfg("forkserver", num_idle=1, max_children=2, queue_timeout=10.0)
    async with Pool(config) as pool:
        server = await runtime.http.serve(pool)
        await pool.wait_for(lambda st: st.available, timeout=20)
        print("port", server.port, flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # the client holds its requests
        try:
            await pool.run(cf.die)  # its child dies, and must be replaced meanwhile
        except ChildDied:
            pass
        print("replaced", await asyncio.wait_for(pool.run(cf.add, 1, 2), 15), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        await server.close()

if __name__ == "__main__":
    asyncio.run(main())
"""


def connect_many(port: int, count: int) -> list[socket.socket]:
    """Up to ``count`` loopback connections, each with half a request sent."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    deadline = time.monotonic() + 5
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending, [], 0.5)
        for sock in writable:
            pending.remove(sock)
            try:
                sock.send(HALF_REQUEST)
            except OSError:
                pass  # refused or reset: the server closed it
    for sock in pending:  # never accepted (the backlog was full): not held
        sock.close()
    return [s for s in socks if s not in pending]


def all_closed_by_server(socks: list[socket.socket], timeout: float) -> bool:
    open_ = list(socks)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(open_, [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                open_.remove(sock)
    return not open_


@pytest.mark.timeout(90)
def test_half_sent_requests_cannot_starve_the_pool_of_file_descriptors() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-c", STARVED_SCRIPT], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline().split()[1])
        socks = connect_many(port, LIMIT + 50)  # more than the server's whole limit
        proc.stdin.write("go\n")
        proc.stdin.flush()
        # The pool replaces a dead child while the half-sent requests are held.
        assert proc.stdout.readline().strip() == "replaced 3"
        # Every held request is cut off at request_timeout.
        assert all_closed_by_server(socks, timeout=15)
        proc.stdin.write("done\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-3000:]
    finally:
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "refused a connection" in err
    assert "out of system resource" not in err  # asyncio's own accept errors
    # Rate-limited: one line, then at most one per LOG_EVERY (10 s).
    assert 1 <= err.count("wayout http:") <= 3, err[-3000:]
