"""Shared pytest configuration."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # `make test` runs slow tests that also carry this marker, each bounded by
    # a timeout; keep such a test well under a minute.
    config.addinivalue_line(
        "markers", "ci_slice: a slow test that `make test` runs too (keep it short)"
    )


@pytest.fixture(autouse=True)
def _trace_conformance(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Pool a test creates records its trace; at teardown the trace is
    replayed against the lifecycle specs (models.conformance), and the core's
    objects must be in the states their histories end in. A test that breaks
    either fails, whatever it asserted itself."""
    pool_module = sys.modules.get("runtime.pool")
    if pool_module is None:  # the test never touched the runtime: nothing to trace
        yield
        return
    from fsm.events import Command, Transitioned
    from models import conformance

    traced: list[tuple[Any, list[Transitioned]]] = []
    pool_class = pool_module.Pool
    original_init = pool_class.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        records: list[Transitioned] = []
        traced.append((self, records))

        def record(command: Command) -> None:
            if type(command) is Transitioned:
                records.append(command)

        self.subscribe(record)

    monkeypatch.setattr(pool_class, "__init__", recording_init)
    yield
    problems = []
    for pool, records in traced:
        core = pool._core
        if core is None:
            continue  # never started
        crash = pool._crash
        # A supervisor loop that failed mid-batch may have performed commands its
        # listeners never saw: its trace is checked, not compared with the core.
        compare = crash is None or isinstance(crash, asyncio.CancelledError)
        report = conformance.check(records, conformance.live_states(core) if compare else None)
        if not report.ok:
            problems.append(str(report))
    if problems:
        pytest.fail("trace conformance: " + "\n".join(problems), pytrace=False)
