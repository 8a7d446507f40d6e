"""A child's logs, tracebacks and output reach the parent, attributed to child, pid and job."""

from __future__ import annotations

import logging
from pathlib import Path

import child_funcs as cf
import pytest
from runtime_support import METHODS, cfg, pool_test
from script_support import Script

from runtime import Pool

pytestmark = pytest.mark.timeout(60)


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_child_log_records_arrive_with_child_pid_and_job(
    method: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wayout.child")
    async with Pool(cfg(method, initializer=cf.init_logs)) as pool:
        (child_id,) = pool.status().pids
        job = pool.submit(cf.log, "hello from a job", logging.INFO)
        pid = await job
    (record,) = records(caplog, "hello from a job")
    assert record.name == "wayout.child.wayout_test"
    assert record.levelno == logging.INFO
    assert (record.child_id, record.pid, record.job_id) == (child_id, pid, job.id)  # type: ignore[attr-defined]
    # Where and when it was made: in the child.
    assert record.process == pid
    assert record.funcName == "log" and record.pathname.endswith("child_funcs.py")
    (init,) = records(caplog, "initializer says hello")
    assert init.name == "wayout.child.wayout_test.init"
    assert (init.child_id, init.pid, init.job_id) == (child_id, pid, None)  # type: ignore[attr-defined]


@pool_test
async def test_a_logged_exception_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async with Pool(cfg("forkserver")) as pool:
        await pool.run(cf.log_exception, "oops")
    (record,) = records(caplog, "caught: oops")
    assert record.levelno == logging.ERROR
    assert record.exc_text is not None
    assert "Traceback (most recent call last)" in record.exc_text
    assert "ValueError: oops" in record.exc_text


@pytest.mark.parametrize("method", METHODS)
@pool_test
async def test_an_uncaught_exception_in_a_child_thread_is_logged_in_the_parent(
    method: str, caplog: pytest.LogCaptureFixture,
) -> None:
    async with Pool(cfg(method)) as pool:
        job = pool.submit(cf.thread_raises, "nobody caught this")
        pid = await job
    (record,) = records(caplog, "uncaught exception in thread doomed")
    assert record.name == "wayout.child"
    assert record.levelno == logging.ERROR
    assert (record.pid, record.job_id) == (pid, job.id)  # type: ignore[attr-defined]
    assert record.exc_text is not None
    assert "ValueError: nobody caught this" in record.exc_text


@pool_test
async def test_the_child_logs_at_the_level_the_parent_would_emit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="wayout.child")
    async with Pool(cfg("spawn")) as pool:
        # Dropped in the child: never formatted, never sent.
        assert await pool.run(cf.root_log_level) == logging.ERROR
        await pool.run(cf.log, "too quiet to cross", logging.WARNING)
    assert not records(caplog, "too quiet to cross")


@pool_test
async def test_a_forked_child_does_not_write_through_the_parents_handlers(
    tmp_path: Path,
) -> None:
    # A fork copies the parent's handlers: left in place, the child would write
    # each record itself, and the parent would write it a second time.
    path = tmp_path / "parent.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        async with Pool(cfg("fork")) as pool:
            await pool.run(cf.log, "said once")
    finally:
        root.removeHandler(handler)
        handler.close()
    assert path.read_text().splitlines() == ["wayout.child.wayout_test: said once"]


#: Runs jobs that print, raise in a thread, and print then die; its stderr has
#: the child records, formatted with their child and job.
PRINTER = """
import asyncio, logging, sys
import child_funcs as cf
from runtime import Pool
from runtime.errors import ChildDied
from runtime_support import cfg

handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter(
    "%(name)s child=%(child_id)s job=%(job_id)s: %(message)s",
    defaults={"child_id": "-", "job_id": "-"}))
logging.basicConfig(level=logging.WARNING, handlers=[handler])

async def main(method):
    async with Pool(cfg(method)) as pool:
        await pool.run(cf.print_both, "printed")
        await pool.run(cf.thread_raises, "raised in a thread")
        try:
            await pool.run(cf.print_then_die, "last words")
        except ChildDied:
            print("the child died", flush=True)

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("method", METHODS)
def test_child_output_and_tracebacks_reach_the_parents_streams(method: str) -> None:
    script = Script(PRINTER, method)
    code, err = script.finish(timeout=45)
    assert code == 0, err
    assert "printed on stdout" in script.lines
    # Printed just before a SIGKILL: kept only because stdout is line-buffered.
    assert "last words" in script.lines
    assert script.lines[-1] == "the child died"
    assert "printed on stderr" in err.splitlines()
    assert "wayout.child child=0 job=1: uncaught exception in thread doomed" in err
    assert "ValueError: raised in a thread" in err


@pool_test
async def test_a_huge_log_record_is_cut_never_breaks_the_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 4-byte characters in every field: each clipped to its character limit,
    # together they still would not fit the frame cap.
    async with Pool(cfg("fork", max_message_bytes=4096)) as pool:
        await pool.run(cf.log_wide, 100_000)
        assert await pool.run(cf.add, 1, 2) == 3
        assert not [t for t in pool.transitions() if t.kind == "child" and t.event == "kill"]
    (record,) = records(caplog, "caught: \N{GRINNING FACE}")
    assert len(record.getMessage().encode()) < 4096
