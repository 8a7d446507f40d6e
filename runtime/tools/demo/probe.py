"""The supervisor's own records of a running pool: states and deadlines now.

The live view counts each child's and job's deadline down, and those
deadlines exist only in the core (``SupervisorCore.children[...].deadline``).
``Pool`` offers no public accessor for them yet, so this module is the one
place that reads ``pool._core`` and ``pool._clock``; when ``Pool`` grows one,
only this file changes. Read-only, and called on the event loop's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fsm.lifecycles import CHILD, JOB, POOL

if TYPE_CHECKING:
    from fsm.codec import ChildRecord
    from fsm.config import PoolConfig
    from fsm.core import SupervisorCore
    from runtime.pool import Pool


@dataclass(frozen=True)
class Countdown:
    """A state's deadline: the setting that bounds it, its length, what is left."""

    setting: str
    total: float
    left: float


@dataclass(frozen=True)
class ChildNow:
    ident: int
    state: str
    pid: int | None
    job: int | None
    countdown: Countdown | None


@dataclass(frozen=True)
class JobNow:
    ident: int
    state: str
    child: int | None
    countdown: Countdown | None


def _core(pool: Pool) -> SupervisorCore | None:
    return pool._core


def _now(pool: Pool) -> float:
    return pool._clock.now()


def core_child(pool: Pool, ident: int) -> ChildRecord | None:
    core = _core(pool)
    return None if core is None else core.children.get(ident)


def children(pool: Pool) -> list[ChildNow]:
    core = _core(pool)
    if core is None:
        return []
    now = _now(pool)
    found = []
    for c in core.children.values():
        setting = CHILD.state(c.state).timeout
        countdown = None
        if setting is not None and c.deadline is not None:
            countdown = Countdown(setting, _length(pool.config, setting), c.deadline - now)
        found.append(ChildNow(c.ident, c.state, c.pid, c.job, countdown))
    return found


def jobs(pool: Pool) -> dict[int, JobNow]:
    core = _core(pool)
    if core is None:
        return {}
    now = _now(pool)
    found = {}
    for j in core.jobs.values():
        setting = JOB.state(j.state).timeout
        countdown = None
        if setting is not None and j.deadline is not None:
            total = j.timeout if setting == "job_timeout" else _length(pool.config, setting)
            countdown = Countdown(setting, total, j.deadline - now)
        found[j.ident] = JobNow(j.ident, j.state, j.child, countdown)
    return found


def pool_countdown(pool: Pool) -> Countdown | None:
    core = _core(pool)
    if core is None or core.pool.deadline is None:
        return None
    setting = POOL.state(core.pool.state).timeout
    if setting is None:
        return None
    return Countdown(setting, _length(pool.config, setting), core.pool.deadline - _now(pool))


def _length(config: PoolConfig, setting: str) -> float:
    try:
        return config.duration(setting)
    except Exception:  # computed settings (backoff_delay): no fixed length
        return 0.0
