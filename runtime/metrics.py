"""Prometheus metrics of a ``Pool``, from what its supervisor core decides.

``PoolMetrics(pool)`` subscribes to the pool (``Pool.subscribe``) and turns
the core's commands into counters and histograms; the gauges (children and
jobs per state, availability...) are read from ``pool.status()`` when the
registry is collected, so they are never stale and cost nothing between
scrapes. Every metric lives in the ``PoolMetrics``' own ``CollectorRegistry``,
not in prometheus-client's global one: two pools (or two tests) in one
process then never clash over a metric name.

Durations come from the core's clock (the ``now`` of its ``Transitioned``
records), not from the wall clock of this module: a job's latency is the time
between the core taking the job in and the core settling it.

Label values are bounded by construction: lifecycle states and outcomes come
from ``fsm.lifecycles``, error classes from ``fsm.errors``, and kill reasons
from the core's fixed ``Kill.cause`` values.

Collect from the pool's event loop (``runtime.http.serve`` does):
``pool.status()`` reads the core, which only the loop's thread may touch.

Needs the optional extra ``wayout[http]`` (prometheus-client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "runtime.metrics needs prometheus-client: install wayout with the http extra "
        "(pip install 'wayout[http]')"
    ) from exc

from fsm import events as ev
from fsm.lifecycles import CHILD, JOB, POOL
from runtime.pool import PoolStatus

#: The label values of ``wayout_child_kills_total``: the core's ``Kill.cause`` values.
KILL_REASONS = ev.KILL_CAUSES

#: Seconds; jobs run from milliseconds up to job_timeout (300 s by default).
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               120.0, 300.0, 600.0)
#: Seconds; a fork is milliseconds, a spawned interpreter with a model to load is seconds.
START_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: The label value of ``src`` for a creation record (the core records it with source "").
CREATED = "none"


class ObservablePool(Protocol):
    """What ``PoolMetrics`` needs of a pool (``runtime.Pool`` has it)."""

    def status(self) -> PoolStatus: ...

    def subscribe(self, listener: Callable[[ev.Command], None]) -> Callable[[], None]: ...


class PoolMetrics:
    """Prometheus metrics of one pool, in a registry of their own (``.registry``).

    Create it before the pool starts to see the first children's warm-up.
    ``close()`` unsubscribes it (the status gauges keep reading the pool).
    """

    def __init__(
        self,
        pool: ObservablePool,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "wayout",
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ns = namespace
        reg = self.registry
        self.transitions = Counter(
            "transitions", "State changes, by lifecycle, source and destination state "
            f"(src={CREATED!r} for a creation)",
            ("lifecycle", "src", "dst"), namespace=ns, registry=reg)
        self.job_seconds = Histogram(
            "job_duration_seconds", "Time from a job's submission to its final state, "
            "by final state (done, failed, cancelled)",
            ("outcome",), namespace=ns, buckets=JOB_BUCKETS, registry=reg)
        self.jobs_settled = Counter(
            "jobs_settled", "Jobs settled, by final state and the error class raised "
            "to the caller (none for a value)",
            ("outcome", "error"), namespace=ns, registry=reg)
        self.start_seconds = Histogram(
            "child_start_seconds", "Time from spawning a child to its hello "
            "(process start and interpreter import)",
            namespace=ns, buckets=START_BUCKETS, registry=reg)
        self.warmup_seconds = Histogram(
            "child_warmup_seconds", "Time from spawning a child to it being ready "
            "(process start plus initializer)",
            namespace=ns, buckets=START_BUCKETS, registry=reg)
        self.kills = Counter(
            "child_kills", f"Children SIGKILLed, by reason ({', '.join(KILL_REASONS)})",
            ("reason",), namespace=ns, registry=reg)
        self.availability_changes = Counter(
            "availability_changes", "Times the pool became available or unavailable",
            ("available",), namespace=ns, registry=reg)
        # Pre-create the bounded label sets, so that a scrape shows zeros
        # instead of absent series (absent series break rate() alerts).
        for label in KILL_REASONS:
            self.kills.labels(label)
        for flag in ("0", "1"):
            self.availability_changes.labels(flag)
        reg.register(_StatusCollector(pool, ns))

        self._job_final = JOB.final_states
        self._child_final = CHILD.final_states
        # Creation times of live jobs and of children not ready yet (core clock).
        self._job_submitted: dict[int, float] = {}
        self._child_spawned: dict[int, float] = {}
        self._unsubscribe: Callable[[], None] | None = pool.subscribe(self._on_command)

    def close(self) -> None:
        """Stop following the pool's commands."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------------

    def _on_command(self, command: ev.Command) -> None:
        if isinstance(command, ev.Transitioned):
            self._on_transitioned(command)
        elif isinstance(command, ev.Kill):
            self.kills.labels(command.cause).inc()
        elif isinstance(command, ev.SettleJob):
            outcome = command.outcome
            error = outcome.error.__name__ if outcome.error is not None else "none"
            self.jobs_settled.labels(outcome.state, error).inc()
        elif isinstance(command, ev.ReportAvailability):
            self.availability_changes.labels("1" if command.available else "0").inc()

    def _on_transitioned(self, t: ev.Transitioned) -> None:
        self.transitions.labels(t.kind, t.source or CREATED, t.dest).inc()
        if t.kind == "job":
            if not t.source:
                self._job_submitted[t.ident] = t.now
            if t.dest in self._job_final:
                submitted = self._job_submitted.pop(t.ident, None)
                if submitted is not None:
                    self.job_seconds.labels(t.dest).observe(t.now - submitted)
        elif t.kind == "child":
            if not t.source:
                self._child_spawned[t.ident] = t.now
                return
            spawned = self._child_spawned.get(t.ident)
            if spawned is None:
                return
            if t.source == "spawned" and t.dest == "warming":
                self.start_seconds.observe(t.now - spawned)
            elif t.dest == "ready":
                self.warmup_seconds.observe(t.now - spawned)
                del self._child_spawned[t.ident]
            elif t.dest in self._child_final:
                del self._child_spawned[t.ident]
        elif t.kind == "pool" and t.dest in POOL.final_states:
            # Jobs failed by a dying supervisor loop get no final record.
            self._job_submitted.clear()
            self._child_spawned.clear()


class _StatusCollector(Collector):
    """Gauges read from ``pool.status()`` at collection time."""

    def __init__(self, pool: ObservablePool, namespace: str) -> None:
        self._pool = pool
        self._ns = namespace

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not read the pool.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(self._pool.status())

    def _families(self, st: PoolStatus | None = None) -> list[Metric]:
        ns = self._ns

        def per_state(name: str, doc: str, label: str, states: Iterable[str],
                      counts: Mapping[str, int] | None) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"{ns}_{name}", doc, labels=(label,))
            if counts is not None:
                for state in states:
                    family.add_metric((state,), counts.get(state, 0))
            return family

        def single(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            if value is None:
                return GaugeMetricFamily(f"{ns}_{name}", doc, labels=())
            return GaugeMetricFamily(f"{ns}_{name}", doc, value=value)

        pool_state = None if st is None else {s: int(s == st.state) for s in POOL.state_names}
        return [
            per_state("children", "Children per lifecycle state", "state",
                      CHILD.state_names, None if st is None else st.children),
            per_state("jobs", "Live jobs per lifecycle state", "state",
                      JOB.state_names, None if st is None else st.jobs),
            per_state("pool_state", "1 for the pool's current lifecycle state", "state",
                      POOL.state_names, pool_state),
            single("available", "1 if a job submitted now would start without waiting "
                   "on a failing spawn", None if st is None else float(st.available)),
            single("jobs_queued", "Jobs waiting for a child",
                   None if st is None else st.queued),
            single("warm_target", "Ready children the pool keeps",
                   None if st is None else st.warm_target),
            single("restart_budget", "Child failures left before the pool backs off",
                   None if st is None else st.restart_budget),
            single("backoff_level", "Consecutive back-offs (0 when spawning works)",
                   None if st is None else st.backoff_level),
        ]
