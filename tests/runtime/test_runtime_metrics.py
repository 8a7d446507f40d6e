"""PoolMetrics: counters and histograms from the core's commands, gauges from status.

Most tests drive the real SupervisorCore with event scripts on a virtual clock
(the metrics only see its commands), so durations are exact and every kill
reason comes from the core's own wording; one test runs a real Pool.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import child_funcs as cf
import pytest
from runtime_support import cfg, pool_test, wait_status

from fsm import events as ev
from fsm.core import SupervisorCore
from fsm.lifecycles import CHILD, JOB
from runtime import Pool, PoolStatus
from runtime.metrics import KILL_REASONS, PoolMetrics


class CorePool:
    """The two things PoolMetrics needs of a Pool, over a bare core fed by hand."""

    def __init__(self, **overrides: Any) -> None:
        settings = {"num_idle": 1, "max_children": 1, **overrides}
        self.core = SupervisorCore(cfg("fork", **settings), now=0.0)
        self.listeners: list[Callable[[ev.Command], None]] = []
        self.commands: list[ev.Command] = []

    def subscribe(self, listener: Callable[[ev.Command], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def status(self) -> PoolStatus:
        st = self.core.status()
        return PoolStatus(
            state=st.pool_state, available=st.available, reason=st.reason,
            children=dict(st.children), jobs=dict(st.jobs), queued=st.queued,
            warm_target=st.warm_target, restart_budget=st.restart_budget,
            backoff_level=st.backoff_level, pids={},
        )

    def feed(self, event: ev.Event) -> list[ev.Command]:
        commands = self.core.handle(event)
        self.commands.extend(commands)
        for listener in list(self.listeners):
            for command in commands:
                listener(command)
        return commands

    def until(self, t: float) -> None:
        """Drive the core at each of its deadlines up to ``t``, then at ``t``, as the
        runtime does (one jump over due deadlines would be a stall of the parent,
        which judges nothing)."""
        while (d := self.core.next_deadline()) is not None and d <= t:
            self.feed(ev.DeadlineReached(now=max(d, self.core.now)))
        self.feed(ev.DeadlineReached(now=t))

    def warm(self, child: int = 0, spawned: float = 0.05, hello: float = 0.1,
             ready: float = 0.3) -> None:
        self.feed(ev.Spawned(now=spawned, child=child, pid=1000 + child))
        self.feed(ev.Hello(now=hello, child=child))
        self.feed(ev.Ready(now=ready, child=child))


def value(metrics: PoolMetrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    assert sample is not None, f"no sample {name}{labels}"
    return sample


def kills(metrics: PoolMetrics) -> dict[str, float]:
    return {r: value(metrics, "wayout_child_kills_total", reason=r) for r in KILL_REASONS}


def started(**overrides: Any) -> tuple[CorePool, PoolMetrics]:
    pool = CorePool(**overrides)
    metrics = PoolMetrics(pool)
    pool.feed(ev.Start(now=0.0))
    return pool, metrics


# --- kill reasons, as the core words them --------------------------------------------


def _spawn_timeout(p: CorePool) -> None:
    p.until(p.core.config.spawn_timeout + 0.01)


def _initialize_timeout(p: CorePool) -> None:
    p.feed(ev.Spawned(now=0.05, child=0, pid=1000))
    p.feed(ev.Hello(now=0.1, child=0))
    p.until(0.1 + p.core.config.initialize_timeout + 0.01)


def _init_error(p: CorePool) -> None:
    p.feed(ev.Spawned(now=0.05, child=0, pid=1000))
    p.feed(ev.Hello(now=0.1, child=0))
    # User text that mentions other causes must not fool the classification.
    p.feed(ev.InitError(now=0.2, child=0,
                        reason="RuntimeError: bad; then within ping_timeout=1s"))


def _ping_timeout(p: CorePool) -> None:
    p.warm()
    p.until(0.3 + p.core.config.ping_timeout + 0.01)


def _protocol(p: CorePool) -> None:
    p.warm()
    p.feed(ev.BadMessage(now=0.5, child=0, reason="a frame that is not a message"))


def _unexpected_message(p: CorePool) -> None:
    p.warm()
    p.feed(ev.Hello(now=0.5, child=0))  # a ready child says hello again


def _memory(p: CorePool) -> None:
    p.warm()
    p.feed(ev.MemorySample(now=0.5, child=0, mb=500.0))


def _ack_timeout(p: CorePool) -> None:
    p.warm()
    p.feed(ev.Submit(now=1.0, job=0))
    p.until(1.0 + p.core.config.ack_timeout + 0.01)


def _closing(p: CorePool) -> None:
    p.feed(ev.Spawned(now=0.05, child=0, pid=1000))
    p.feed(ev.Close(now=0.1))


def _close_timeout(p: CorePool) -> None:
    p.warm()
    p.feed(ev.Close(now=1.0))  # a ready child is told to stop...
    p.feed(ev.DeadlineReached(now=1.0 + p.core.config.close_timeout + 0.01))  # ...and does not


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("script", "label"), [
    (_spawn_timeout, "spawn_timeout"),
    (_initialize_timeout, "initialize_timeout"),
    (_init_error, "init_error"),
    (_ping_timeout, "ping_timeout"),
    (_protocol, "protocol"),
    (_unexpected_message, "protocol"),
    (_memory, "memory"),
    (_ack_timeout, "ack_timeout"),
    (_closing, "closing"),
    (_close_timeout, "close_timeout"),
])
def test_each_kill_is_counted_once_under_its_reason(
    script: Callable[[CorePool], None], label: str
) -> None:
    pool, metrics = started(memory_limit_mb=100.0)
    script(pool)
    issued = [c for c in pool.commands if isinstance(c, ev.Kill)]
    assert len(issued) == 1, issued
    assert issued[0].cause == label, issued[0]
    expected = dict.fromkeys(KILL_REASONS, 0.0)
    expected[label] = 1.0
    assert kills(metrics) == expected, issued[0].reason


# --- durations, outcomes, transitions ---------------------------------------------------


@pytest.mark.timeout(10)
def test_durations_come_from_the_cores_clock() -> None:
    pool, metrics = started()
    pool.warm(spawned=0.05, hello=0.1, ready=0.3)
    pool.feed(ev.Submit(now=1.0, job=0))
    pool.feed(ev.JobAck(now=1.1, child=0, job=0))
    pool.feed(ev.JobDone(now=3.5, child=0, job=0, result=b""))
    pool.feed(ev.Submit(now=4.0, job=1))
    pool.feed(ev.JobAck(now=4.05, child=0, job=1))
    pool.feed(ev.JobRaised(now=4.25, child=0, job=1, error_type="ValueError", message="no"))

    assert value(metrics, "wayout_child_start_seconds_count") == 1
    assert value(metrics, "wayout_child_start_seconds_sum") == pytest.approx(0.1)
    assert value(metrics, "wayout_child_warmup_seconds_count") == 1
    assert value(metrics, "wayout_child_warmup_seconds_sum") == pytest.approx(0.3)
    assert value(metrics, "wayout_job_duration_seconds_count", outcome="done") == 1
    assert value(metrics, "wayout_job_duration_seconds_sum", outcome="done") == pytest.approx(2.5)
    assert value(metrics, "wayout_job_duration_seconds_count", outcome="failed") == 1
    assert value(metrics, "wayout_job_duration_seconds_sum",
                 outcome="failed") == pytest.approx(0.25)
    assert value(metrics, "wayout_job_duration_seconds_bucket", outcome="done", le="2.5") == 1
    assert value(metrics, "wayout_job_duration_seconds_bucket", outcome="done", le="1.0") == 0
    assert value(metrics, "wayout_jobs_settled_total", outcome="done", error="none") == 1
    assert value(metrics, "wayout_jobs_settled_total", outcome="failed", error="JobFailed") == 1
    assert sum(kills(metrics).values()) == 0


@pytest.mark.timeout(10)
def test_a_cancelled_job_is_settled_with_its_error_class() -> None:
    pool, metrics = started()
    pool.warm()
    pool.feed(ev.Submit(now=1.0, job=0))
    pool.feed(ev.JobAck(now=1.1, child=0, job=0))
    pool.feed(ev.Cancel(now=2.0, job=0))
    pool.feed(ev.CancelAck(now=2.5, child=0, job=0))
    assert value(metrics, "wayout_jobs_settled_total", outcome="cancelled",
                 error="JobCancelled") == 1
    assert value(metrics, "wayout_job_duration_seconds_sum",
                 outcome="cancelled") == pytest.approx(1.5)


@pytest.mark.timeout(10)
def test_transitions_counter_matches_every_record_the_core_issued() -> None:
    pool, metrics = started()
    pool.warm()
    pool.feed(ev.Submit(now=1.0, job=0))
    pool.feed(ev.JobAck(now=1.1, child=0, job=0))
    pool.feed(ev.JobDone(now=1.2, child=0, job=0, result=b""))
    pool.feed(ev.Close(now=2.0))
    pool.feed(ev.ChildExited(now=2.1, child=0, code=0))

    records = Counter((c.kind, c.source or "none", c.dest) for c in pool.commands
                      if isinstance(c, ev.Transitioned))
    assert ("job", "none", "queued") in records and ("pool", "closing", "closed") in records
    for (kind, src, dst), count in records.items():
        assert value(metrics, "wayout_transitions_total", lifecycle=kind, src=src,
                     dst=dst) == count
    exposed = sum(s.value for family in metrics.registry.collect()
                  if family.name == "wayout_transitions" for s in family.samples
                  if s.name == "wayout_transitions_total")
    assert exposed == sum(records.values())


@pytest.mark.timeout(10)
def test_status_gauges_follow_the_pool_at_collection_time() -> None:
    pool, metrics = started()

    def check() -> None:
        st = pool.status()
        for state in CHILD.state_names:
            assert value(metrics, "wayout_children", state=state) == st.children[state]
        for state in JOB.state_names:
            assert value(metrics, "wayout_jobs", state=state) == st.jobs[state]
        assert value(metrics, "wayout_pool_state", state=st.state) == 1
        assert value(metrics, "wayout_available") == float(st.available)
        assert value(metrics, "wayout_jobs_queued") == st.queued
        assert value(metrics, "wayout_restart_budget") == st.restart_budget

    check()
    assert value(metrics, "wayout_children", state="spawned") == 1
    pool.warm()
    check()
    assert value(metrics, "wayout_available") == 1
    pool.feed(ev.BadMessage(now=1.0, child=0, reason="garbage"))
    check()
    assert value(metrics, "wayout_available") == 0
    assert value(metrics, "wayout_children", state="failed") == 1
    reports = Counter(c.available for c in pool.commands
                      if isinstance(c, ev.ReportAvailability))
    assert reports[True] == 1 and reports[False] >= 1
    for flag, count in reports.items():
        assert value(metrics, "wayout_availability_changes_total",
                     available=str(int(flag))) == count


@pytest.mark.timeout(10)
def test_two_pools_keep_separate_registries_and_close_unsubscribes() -> None:
    pool = CorePool()
    first = PoolMetrics(pool)
    second = PoolMetrics(pool)  # a second registry: no duplicate-name error
    pool.feed(ev.Start(now=0.0))
    pool.warm()
    assert value(first, "wayout_child_warmup_seconds_count") == 1
    assert value(second, "wayout_child_warmup_seconds_count") == 1
    first.close()
    pool.feed(ev.BadMessage(now=1.0, child=0, reason="garbage"))
    assert value(first, "wayout_child_kills_total", reason="protocol") == 0
    assert value(second, "wayout_child_kills_total", reason="protocol") == 1
    text = second.exposition().decode()
    assert 'wayout_child_kills_total{reason="protocol"} 1.0' in text


# --- a real pool ------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pool_test
async def test_a_real_pool_fills_the_metrics() -> None:
    pool = Pool(cfg("fork", num_idle=2, max_children=2))
    metrics = PoolMetrics(pool)  # before start: the first warm-ups are counted
    async with pool:
        await wait_status(pool, lambda st: st.children["ready"] == 2)
        assert await pool.run(cf.add, 1, 2) == 3
        assert value(metrics, "wayout_child_warmup_seconds_count") == 2
        assert value(metrics, "wayout_job_duration_seconds_count", outcome="done") == 1
        assert value(metrics, "wayout_jobs_settled_total", outcome="done", error="none") == 1
        assert value(metrics, "wayout_transitions_total", lifecycle="job", src="none",
                     dst="queued") == 1
        assert value(metrics, "wayout_children", state="ready") == pool.status().children["ready"]
    assert value(metrics, "wayout_pool_state", state="closed") == 1
    assert value(metrics, "wayout_children", state="ready") == 0
    assert sum(kills(metrics).values()) == 0
    metrics.close()
