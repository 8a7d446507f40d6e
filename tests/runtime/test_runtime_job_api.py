"""Keyword arguments, exceptions that keep their type, and the escapes around
pickling and calling from the wrong thread (issues 15 and 16)."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from runtime import Pool
from runtime.errors import (
    InvalidJob,
    JobFailed,
    RemoteTraceback,
    WayoutError,
    WrongLoop,
)
from tests.runtime import child_funcs as cf
from tests.runtime.runtime_support import cfg, pool_test


@pytest.mark.timeout(60)
@pool_test
async def test_keyword_arguments_and_the_timeout_option() -> None:
    async with Pool(cfg("fork")) as pool:
        assert await pool.run(cf.kw, 1, b=2) == (1, 2, None)
        # timeout= is wayout's in run/submit; options() hands every keyword to the job.
        assert await pool.run(cf.kw, 1, b=2, timeout=5.0) == (1, 2, None)
        assert await pool.options(timeout=5.0).run(cf.kw, 1, timeout=0.5) == (1, 0, 0.5)
        assert await pool.options().submit(cf.kw, 3, b=4) == (3, 4, None)


@pytest.mark.timeout(60)
@pool_test
async def test_a_job_exception_keeps_its_type_args_and_traceback() -> None:
    async with Pool(cfg("fork")) as pool:
        with pytest.raises(cf.AppError) as raised:
            await pool.run(cf.raise_app_error, 42, "bad input")
        error = raised.value
        assert isinstance(error, JobFailed) and isinstance(error, WayoutError)
        assert error.args == (42, "bad input") and error.code == 42
        assert error.remote_type == "tests.runtime.child_funcs.AppError"
        assert isinstance(error.__cause__, RemoteTraceback)
        assert "in raise_app_error" in str(error.__cause__)
        assert error.job_id is not None
        # The rebuilt error pickles again (into a derived class of the same two).
        again = pickle.loads(pickle.dumps(error))
        assert isinstance(again, cf.AppError) and isinstance(again, JobFailed)
        assert again.args == (42, "bad input")

        with pytest.raises(FileNotFoundError) as missing:
            await pool.run(cf.raise_os_error)
        assert missing.value.errno == 2 and missing.value.filename == "/nowhere"
        assert isinstance(missing.value, JobFailed)

        with pytest.raises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)

        # Cannot be pickled in the child: a plain JobFailed with its text.
        with pytest.raises(JobFailed) as text_only:
            await pool.run(cf.raise_unpicklable)
        assert type(text_only.value) is JobFailed
        assert text_only.value.remote_message == "cannot travel"

        # SystemExit in a job never ends the caller: a plain JobFailed.
        with pytest.raises(JobFailed) as exited:
            await pool.run(cf.exit_job, 3)
        assert type(exited.value) is JobFailed and exited.value.remote_type == "SystemExit"


@pytest.mark.timeout(60)
@pool_test
async def test_each_await_of_a_failed_job_raises_its_error_with_a_fresh_traceback() -> None:
    # A handle keeps its error; the tracebacks of earlier awaits must not pile
    # up on it (each holds frames that the garbage collector walks, issue 15).
    def depth(error: BaseException) -> int:
        tb, n = error.__traceback__, 0
        while tb is not None:
            tb, n = tb.tb_next, n + 1
        return n

    async with Pool(cfg("fork")) as pool:
        handle = pool.submit(divmod, 1, 0)
        depths, errors = [], []
        for _ in range(3):
            # Not pytest.raises: it would reset the traceback it captures.
            try:
                await handle
            except ZeroDivisionError as error:
                depths.append(depth(error))
                errors.append(error)
        assert len(errors) == 3 and errors[0] is errors[1] is errors[2]
        assert depths[0] > 0 and depths == [depths[0]] * 3


@pytest.mark.timeout(60)
@pool_test
async def test_an_exception_whose_str_raises_fails_the_job_not_the_child() -> None:
    async with Pool(cfg("fork", num_idle=1, max_children=1)) as pool:
        pid = await pool.run(cf.pid)
        with pytest.raises(JobFailed) as raised:
            await pool.run(cf.raise_unprintable)
        assert "str() failed" in raised.value.remote_message
        assert await pool.run(cf.pid) == pid  # the same child: it did not die
        assert pool.status().restart_budget == pool.config.max_restarts


@pytest.mark.timeout(60)
@pool_test
async def test_no_base_exception_escapes_pickling_or_unpickling() -> None:
    async with Pool(cfg("fork")) as pool:
        for how in ("exit", "interrupt"):
            with pytest.raises(JobFailed, match="cannot be unpickled in the parent"):
                await pool.run(cf.return_exploding, how)
        with pytest.raises(InvalidJob) as refused:
            pool.submit(cf.echo, cf.ExitsOnPickle())
        assert isinstance(refused.value.__cause__, SystemExit)
        with pytest.raises(pickle.PicklingError) as refused_type:  # and an InvalidJob
            pool.submit(cf.echo, cf.RefusesPickling())
        assert isinstance(refused_type.value, InvalidJob)
        with pytest.raises(TypeError) as lock:  # what pickle raises, and InvalidJob is one
            pool.submit(cf.echo, threading.Lock())
        assert type(lock.value) is InvalidJob
        assert await pool.run(cf.add, 1, 2) == 3


@pytest.mark.timeout(60)
@pool_test
async def test_a_large_result_is_kept_once() -> None:
    async with Pool(cfg("fork")) as pool:
        handle = pool.submit(cf.big_result, 1 << 20)
        value = await handle
        assert len(value) == 1 << 20
        assert handle._future.result().value is None  # the pickled bytes are gone
        assert await handle is value


@pytest.mark.timeout(60)
@pool_test
async def test_calls_from_another_thread_or_loop_are_refused_at_the_call() -> None:
    async with Pool(cfg("fork")) as pool:
        errors: list[BaseException] = []

        def from_thread() -> None:
            try:
                pool.submit(cf.add, 1, 2)
            except BaseException as exc:
                errors.append(exc)

        def from_other_loop() -> None:
            try:
                asyncio.run(pool.run(cf.add, 1, 2))
            except BaseException as exc:
                errors.append(exc)

        for target in (from_thread, from_other_loop):
            thread = threading.Thread(target=target)
            thread.start()
            thread.join()
        assert len(errors) == 2
        for error in errors:
            assert isinstance(error, WrongLoop), error
            assert "runtime.Executor" in str(error)
        assert pool.status().jobs == dict.fromkeys(pool.status().jobs, 0)


@pytest.mark.timeout(60)
@pool_test
async def test_cloudpickle_sends_lambdas_and_closures_when_switched_on() -> None:
    offset = 40
    async with Pool(cfg("fork", serializer="cloudpickle",
                        initializer=lambda: None)) as pool:
        assert await pool.run(lambda x: x + offset, 2) == 42
        assert await pool.run(lambda: (lambda y: y * 2)(21)) == 42
    async with Pool(cfg("fork")) as plain:
        with pytest.raises(InvalidJob, match="cannot be pickled"):
            plain.submit(lambda: offset)


def test_an_unknown_serializer_is_a_config_error() -> None:
    from runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="serializer"):
        cfg("fork", serializer="json")
