"""``PoolConfig``: every setting of a pool, validated when it is made.

The duration settings are the ones the lifecycle specs name as their
timeouts (``fsm.lifecycles``); ``PoolConfig.duration(name)`` resolves such a
name. Every duration must be finite and positive: a state whose deadline is
infinite would be a state with no way out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

from fsm.errors import ConfigError

START_METHODS = ("fork", "forkserver", "spawn")

#: The largest frame body a 4-byte length prefix can announce (runtime.protocol.HEADER),
#: hence the largest max_message_bytes.
MAX_FRAME_BYTES = 2**32 - 1

#: Settings whose value the core computes instead of reading it from the config.
DYNAMIC_SETTINGS = frozenset({"backoff_delay", "job_timeout"})


def _default_start_method() -> str:
    # forkserver is the safe default on Linux: the parent may run threads
    # (aiohttp, logging handlers) that fork would copy in a locked state.
    return "forkserver"


#: The ways a job can be pickled (``PoolConfig.serializer``).
SERIALIZERS = frozenset({"pickle", "cloudpickle"})


@dataclass(frozen=True)
class PoolConfig:
    """The settings of a pool. See README's settings table for each default's reason."""

    # --- size -------------------------------------------------------------
    num_idle: int = 2
    max_children: int = 4
    # --- what a child runs before it is ready ------------------------------
    initializer: Callable[..., Any] | None = None
    initargs: tuple[Any, ...] = ()
    start_method: str = field(default_factory=_default_start_method)
    # --- child lifecycle deadlines (seconds) -------------------------------
    spawn_timeout: float = 10.0
    initialize_timeout: float = 10.0
    ping_interval: float = 2.5
    ping_timeout: float = 10.0
    close_timeout: float = 5.0
    kill_timeout: float = 5.0
    # --- job lifecycle deadlines (seconds) ---------------------------------
    queue_timeout: float = 30.0
    ack_timeout: float = 5.0
    job_timeout: float = 300.0
    # --- pool lifecycle deadlines (seconds) --------------------------------
    start_timeout: float = 30.0
    drain_timeout: float = 60.0
    #: how much later than its next deadline the core may be driven before it
    #: counts the delay as its own stall (event loop blocked, process stopped)
    #: and renews the deadlines that wait on children instead of judging them.
    #: None: ``min(1.0, (ping_timeout - ping_interval) / 2)`` (see ``stall_threshold``)
    stall_grace: float | None = None
    # --- restart intensity (Erlang/OTP style) -------------------------------
    max_restarts: int = 5
    restart_window: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    # --- recycling and memory ------------------------------------------------
    max_jobs_per_child: int | None = None
    memory_warn_mb: float | None = None
    memory_limit_mb: float | None = None
    # --- IPC -------------------------------------------------------------------
    max_message_bytes: int = 64 * 1024 * 1024
    #: how jobs and the initializer are pickled: "pickle", or "cloudpickle" for
    #: functions from __main__, notebooks and lambdas (the `cloudpickle` extra)
    serializer: str = "pickle"

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type == "float":
                self._check_duration(f.name, getattr(self, f.name))
        self._check_count("num_idle", self.num_idle, minimum=0)
        self._check_count("max_children", self.max_children, minimum=1)
        self._check_count("max_restarts", self.max_restarts, minimum=0)
        self._check_count("max_message_bytes", self.max_message_bytes, minimum=1024)
        if self.max_message_bytes > MAX_FRAME_BYTES:
            raise ConfigError(
                f"PoolConfig.max_message_bytes={self.max_message_bytes} exceeds "
                f"{MAX_FRAME_BYTES}, the most a frame's 4-byte length can say"
            )
        if self.serializer not in SERIALIZERS:
            raise ConfigError(
                f"PoolConfig.serializer={self.serializer!r}: use one of {sorted(SERIALIZERS)}")
        if self.max_jobs_per_child is not None:
            self._check_count("max_jobs_per_child", self.max_jobs_per_child, minimum=1)
        for name in ("memory_warn_mb", "memory_limit_mb"):
            value = getattr(self, name)
            if value is not None:
                self._check_duration(name, value, what="a finite number of megabytes > 0")
        if self.num_idle > self.max_children:
            raise ConfigError(
                f"PoolConfig.num_idle={self.num_idle} exceeds max_children="
                f"{self.max_children}: raise max_children or lower num_idle"
            )
        if self.ping_timeout <= self.ping_interval:
            raise ConfigError(
                f"PoolConfig.ping_timeout={self.ping_timeout!r} must exceed ping_interval="
                f"{self.ping_interval!r}, or every healthy child would be killed"
            )
        if self.stall_grace is not None:
            self._check_duration("stall_grace", self.stall_grace)
            slack = self.ping_timeout - self.ping_interval
            if self.stall_grace >= slack:
                raise ConfigError(
                    f"PoolConfig.stall_grace={self.stall_grace!r} must be below ping_timeout - "
                    f"ping_interval={slack:g}: a stall longer than that but within the grace "
                    "would pass healthy children's ping deadlines and blame them"
                )
        if self.backoff_max < self.backoff_initial:
            raise ConfigError(
                f"PoolConfig.backoff_max={self.backoff_max!r} is below backoff_initial="
                f"{self.backoff_initial!r}"
            )
        if (
            self.memory_warn_mb is not None
            and self.memory_limit_mb is not None
            and self.memory_warn_mb > self.memory_limit_mb
        ):
            raise ConfigError(
                f"PoolConfig.memory_warn_mb={self.memory_warn_mb!r} exceeds memory_limit_mb="
                f"{self.memory_limit_mb!r}"
            )
        if self.start_method not in START_METHODS:
            raise ConfigError(
                f"PoolConfig.start_method={self.start_method!r} is not one of "
                f"{', '.join(START_METHODS)}"
            )
        if self.initializer is not None and not callable(self.initializer):
            raise ConfigError(
                f"PoolConfig.initializer={self.initializer!r} is not callable"
            )
        if not isinstance(self.initargs, tuple):
            raise ConfigError(f"PoolConfig.initargs={self.initargs!r} must be a tuple")

    @staticmethod
    def _check_duration(name: str, value: object, what: str = "a finite number > 0") -> None:
        if not _finite_positive(value):
            raise ConfigError(f"PoolConfig.{name} must be {what}, got {_shown(value)}")

    @staticmethod
    def _check_count(name: str, value: object, *, minimum: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"PoolConfig.{name} must be an integer >= {minimum}, got {value!r}")

    @property
    def shutdown_timeout(self) -> float:
        """The bound on closing: a graceful stop, then a kill, then the kill's own timeout."""
        return self.close_timeout + self.kill_timeout

    @cached_property
    def max_backoff_level(self) -> int:
        """The back-off level at which the delay reaches ``backoff_max``: the core
        (and the model, which caps its count of back-offs there) need not count on."""
        level = 1
        while self.backoff_initial * 2 ** (level - 1) < self.backoff_max:
            level += 1
        return level

    @cached_property
    def stall_threshold(self) -> float:
        """How late past its next deadline the core may be driven before it is a stall.

        ``stall_grace`` if set; otherwise half the ping slack (``ping_timeout -
        ping_interval``, the time a healthy child's ping deadline stays ahead of
        the next heartbeat), at most 1 s: well above an event loop's ordinary
        latency, and below the lateness at which a healthy child's ping
        deadline could pass unnoticed.
        """
        if self.stall_grace is not None:
            return float(self.stall_grace)
        return min(1.0, (self.ping_timeout - self.ping_interval) / 2)

    @cached_property
    def durations(self) -> dict[str, float]:
        """Every duration setting's value, by name (``duration`` without its checks,
        for the core, which reads one each time it arms a deadline)."""
        return {setting: float(getattr(self, setting)) for setting in DURATION_SETTINGS
                if setting not in DYNAMIC_SETTINGS}

    def duration(self, setting: str) -> float:
        """The value of a duration setting named by a lifecycle spec."""
        if setting in DYNAMIC_SETTINGS:
            raise ConfigError(f"setting {setting!r} is computed by the core, not configured")
        if setting not in DURATION_SETTINGS:
            # Counts such as num_idle are numbers too, but never a state's timeout.
            raise ConfigError(f"PoolConfig has no duration setting {setting!r}")
        return float(getattr(self, setting))


#: The settings a lifecycle spec may name as a state's timeout (besides DYNAMIC_SETTINGS).
DURATION_SETTINGS = frozenset(
    {f.name for f in fields(PoolConfig) if f.type == "float"} | {"shutdown_timeout"}
)


def job_timeout(config: PoolConfig, timeout: float | None, *, job: int | None = None) -> float:
    """The running deadline of one job: ``timeout`` if given, else ``config.job_timeout``.

    Shared by ``Pool.submit`` (which refuses a bad value at the call) and the
    core (which must never trust its input), so the rule is written once.
    """
    if timeout is None:
        return config.job_timeout
    if not _finite_positive(timeout):
        who = "" if job is None else f"job {job}: "
        raise ConfigError(
            f"{who}timeout must be a finite number of seconds > 0, got {_shown(timeout)}")
    return float(timeout)


def job_bound(config: PoolConfig, timeout: float | None = None) -> float:
    """The longest a job may take from submit to outcome, by the core's own deadlines.

    Waiting for a child (queue_timeout, which a requeue does not reset), plus
    one lost ack, plus running (its timeout, or until its stalled child misses
    its pongs), plus cancelling, plus the reap of a killed child. One
    definition for the model checker (a job past it breaks safety) and the
    soak (which adds slack for a real event loop's latency).
    """
    running = max(job_timeout(config, timeout),
                  config.ping_interval + config.ping_timeout)
    return (config.queue_timeout + config.ack_timeout + running + config.close_timeout
            + config.kill_timeout)


def _finite_positive(value: object) -> bool:
    """A number of seconds (or megabytes) that is > 0 and finite also as a float.

    An int too large for a float (``10**400``) is not: ``float()`` and
    ``math.isfinite`` raise OverflowError on it, and every deadline is a float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and number > 0


def _shown(value: object) -> str:
    """``repr(value)``, cut short: an int of a thousand digits makes a poor message."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
