"""How many samples each measure takes: quick (< 2 min), full (< 10 min), tiny (tests)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    start_method: str = "forkserver"
    workers: int = 2
    # --- latency ---------------------------------------------------------
    warmups: int = 300
    #: round trips (and as many dispatch samples) per implementation, over all rounds
    round_trips: int = 6000
    #: interleaved rounds; each also takes one sample of each throughput
    latency_rounds: int = 30
    throughput_batch: int = 400
    submitters: int = 8
    # --- faults ----------------------------------------------------------
    death_samples: int = 100
    executor_death_samples: int = 30
    loky_death_samples: int = 12
    floor_samples: int = 100
    cold_samples: int = 20
    hung_samples: int = 15
    #: initialize_timeout of the hung warm-up measure; with a second value the
    #: measure is repeated to show the penalty does not depend on it.
    hung_timeouts: tuple[float, ...] = (3.0, 30.0)
    # --- scale -----------------------------------------------------------
    scale_children: int = 64
    scale_ping_interval: float = 1.0
    scale_window_s: float = 10.0
    # --- deadlines (issue 15 item 2: the goals are set at these sizes) -----
    unqueued_jobs: int = 20_000
    burst_jobs: int = 100_000
    sweep_jobs: int = 40_000
    #: long enough for the submit loop and the intake of every job to end
    #: first, so that the jobs reach it together
    sweep_queue_timeout: float = 5.0
    # --- checker ---------------------------------------------------------
    checker_states: int = 200_000
    checker_every: int = 5_000


FULL = Plan(name="full")

QUICK = Plan(
    name="quick",
    warmups=100,
    round_trips=1000,
    latency_rounds=10,
    throughput_batch=200,
    death_samples=25,
    executor_death_samples=8,
    loky_death_samples=4,
    floor_samples=25,
    cold_samples=5,
    hung_samples=4,
    hung_timeouts=(3.0,),
    scale_window_s=3.0,
    checker_states=15_000,
    checker_every=2_500,
)

#: For the smoke test: every measure runs, with a handful of samples.
TINY = Plan(
    name="tiny",
    warmups=5,
    round_trips=20,
    latency_rounds=2,
    throughput_batch=16,
    death_samples=2,
    executor_death_samples=1,
    loky_death_samples=1,
    floor_samples=2,
    cold_samples=1,
    hung_samples=1,
    hung_timeouts=(3.0,),
    scale_children=4,
    scale_window_s=1.0,
    unqueued_jobs=40,
    burst_jobs=200,
    sweep_jobs=300,
    sweep_queue_timeout=0.5,
    checker_states=500,
    checker_every=100,
)

PLANS = {p.name: p for p in (FULL, QUICK, TINY)}
