"""The chaos script: five faults played against a real pool, one scene each.

Each scene injects one fault the way it happens in production (a process
killed by the OOM killer or an operator, an initializer stuck on a network
call, a job that never returns, a job that eats memory), waits for the
supervisor's answer, and checks what must hold afterwards: every job
settled once with the outcome it deserves, the pool back at its warm target.
The scenes only inject faults and submit jobs; every decision shown is the
supervisor's.

Waits are on the pool's own steps (``Pool.wait_for``), each bounded so that a
broken pool fails its scene instead of hanging the demo. The pauses between
scenes are for human readers only (``Timing.pause_s`` is 0 under ``--quick``).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsm.config import PoolConfig
from fsm.lifecycles import CHILD, JOB
from runtime.pool import JobHandle, Pool, PoolStatus
from runtime.tools.demo import probe, workload
from runtime.tools.demo.timeline import OUTCOME_DONE, Fault, JobLife, Timeline, duration

#: Job states that are not an outcome yet (a quiet pool has none).
_LIVE_JOB_STATES = tuple(s.name for s in JOB.states if not s.final)

#: The bound on every wait of a scene: far above what any step takes.
WAIT_S = 20.0


@dataclass(frozen=True)
class Timing:
    """How long things take in the demo; ``QUICK`` for tests and CI."""

    warm_up_s: float  # what the initializer takes ("loading a model")
    initialize_timeout: float
    job_s: float  # an ordinary job
    last_jobs: int  # ordinary jobs after the faults
    long_job_s: float  # the job that keeps a child busy while an initializer hangs
    job_timeout: float  # the stuck job's timeout
    hog_mb: int
    memory_limit_mb: float
    pause_s: float  # between scenes, for readers
    kill_after_s: float  # into a child's warm-up, when it is killed


FULL = Timing(warm_up_s=0.8, initialize_timeout=2.0, job_s=0.4, last_jobs=8, long_job_s=2.0,
              job_timeout=1.5, hog_mb=400, memory_limit_mb=200.0, pause_s=1.2,
              kill_after_s=0.35)
QUICK = Timing(warm_up_s=0.3, initialize_timeout=1.0, job_s=0.1, last_jobs=4, long_job_s=0.6,
               job_timeout=0.5, hog_mb=300, memory_limit_mb=150.0, pause_s=0.0,
               kill_after_s=0.1)

NUM_IDLE = 2


def pool_config(timing: Timing, control_dir: str) -> PoolConfig:
    """The demo's pool: short deadlines, so that every answer shows within seconds."""
    return PoolConfig(
        num_idle=NUM_IDLE,
        max_children=4,
        initializer=workload.warm_up,
        initargs=(control_dir, timing.warm_up_s),
        start_method="forkserver",
        initialize_timeout=timing.initialize_timeout,
        # A fast heartbeat: it also paces the memory samples.
        ping_interval=0.25,
        ping_timeout=2.0,
        close_timeout=1.0,
        kill_timeout=2.0,
        job_timeout=30.0,
        start_timeout=10.0,
        # The demo injects a fault every few seconds on purpose: no back-off for that.
        max_restarts=10,
        restart_window=10.0,
        memory_limit_mb=timing.memory_limit_mb,
    )


@dataclass
class SceneResult:
    title: str
    fault: str = ""
    #: What the supervisor did about it, in one line.
    answer: str = ""
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, what: str, holds: bool) -> bool:
        self.checks.append((what, holds))
        return holds

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(holds for _, holds in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [what for what, holds in self.checks if not holds]


class Stage:
    """What a scene works with: the pool, the timeline, and small helpers."""

    def __init__(self, pool: Pool, timeline: Timeline, timing: Timing, control_dir: Path):
        self.pool = pool
        self.timeline = timeline
        self.timing = timing
        self.control_dir = control_dir

    # --- waiting on the pool -------------------------------------------------------

    async def until(self, predicate: Callable[[PoolStatus], bool], what: str) -> None:
        """Wait for ``predicate`` after a supervisor step; TimeoutError names ``what``."""
        try:
            await self.pool.wait_for(predicate, timeout=WAIT_S)
        except TimeoutError:
            raise TimeoutError(f"waited {WAIT_S:g}s for {what}") from None

    async def child_in(self, state: str, *, not_in: frozenset[int] = frozenset()) -> int:
        """Wait for a child in ``state`` (other than ``not_in``); return its id."""
        def found(_: PoolStatus) -> bool:
            return any(c.state == state and c.ident not in not_in
                       for c in probe.children(self.pool))

        await self.until(found, f"a child {state}")
        return min(c.ident for c in probe.children(self.pool)
                   if c.state == state and c.ident not in not_in)

    async def job_in(self, job: int, state: str) -> None:
        await self.until(lambda _: self.timeline.jobs[job].state == state
                         or self.timeline.jobs[job].settle_count > 0, f"job {job} {state}")

    def at_warm_target(self, status: PoolStatus) -> bool:
        """num_idle children idle and ready, every other one busy; nothing starting or dying."""
        children = status.children
        settled = sum(children.get(s, 0) for s in ("ready", "busy"))
        alive = sum(n for s, n in children.items() if s not in CHILD.final_states)
        return (status.state == "running" and children.get("ready", 0) >= NUM_IDLE
                and settled == alive)

    async def recovered(self, fault: Fault) -> None:
        """Wait until the supervisor answered ``fault`` and the pool is back at its target."""
        await self.until(lambda st: fault.detected is not None and self.at_warm_target(st),
                         f"the pool to recover from: {fault.what}")
        self.timeline.recovered(fault)

    async def quiet(self) -> None:
        """Wait until no job is live and the pool is at its warm target."""
        await self.until(lambda st: not any(st.jobs.get(s, 0) for s in _LIVE_JOB_STATES)
                         and self.at_warm_target(st), "the pool to be quiet")

    # --- acting ----------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any, label: str,
               expect: str = OUTCOME_DONE, timeout: float | None = None) -> JobHandle:
        handle = self.pool.submit(fn, *args, timeout=timeout)
        self.timeline.job_submitted(handle.id, label, expect)
        return handle

    async def settle(self, handle: JobHandle) -> JobLife:
        """Await a job (its error is expected, or not: the timeline judges)."""
        try:
            await asyncio.wait_for(asyncio.shield(_consume(handle)), WAIT_S)
        except TimeoutError:
            raise TimeoutError(f"job {handle.id} did not settle within {WAIT_S:g}s") from None
        return self.timeline.jobs[handle.id]

    def kill(self, child: int, what: str) -> Fault:
        """SIGKILL ``child``'s process: the fault is detected when the supervisor sees it exit."""
        pid = self.pool.status().pids.get(child)
        if pid is None:
            raise RuntimeError(f"child {child} has no process to kill")
        fault = self.timeline.fault(f"{what} (SIGKILL pid {pid})", child=child,
                                    child_events=("exit",))
        os.kill(pid, signal.SIGKILL)
        return fault

    def child_history(self, child: int) -> list[tuple[str, str, str]]:
        life = self.timeline.children.get(child)
        return [] if life is None else [(s, e, d) for _, s, e, d in life.history]


async def _consume(handle: JobHandle) -> None:
    try:
        await handle
    except Exception:  # the outcome is in the timeline; the scene checks it there
        pass


# ----------------------------------------------------------------------------
# The scenes
# ----------------------------------------------------------------------------


async def warming_child_killed(stage: Stage) -> SceneResult:
    result = SceneResult("a warming child is SIGKILLed")
    t = stage.timing
    starting = asyncio.ensure_future(stage.pool.start())
    await asyncio.sleep(0)  # let start() create the supervisor before we wait on it
    try:
        victim = await stage.child_in("warming")
        await asyncio.sleep(t.kill_after_s)  # into its initializer: a reader sees it warm
        fault = stage.kill(victim, f"child {victim} killed while its initializer runs")
        await starting
    finally:
        if not starting.done():
            starting.cancel()
    await stage.recovered(fault)
    result.fault = fault.what
    history = stage.child_history(victim)
    result.check(f"child {victim} died while warming and the supervisor saw it",
                 ("warming", "exit", "killed") in history)
    result.check("the pool started with its num_idle children ready anyway",
                 stage.at_warm_target(stage.pool.status()))
    result.answer = (f"child {victim}'s exit seen after {duration(fault.detect_s)}, a "
                     f"replacement warmed: recovered {duration(fault.recover_s)} after the kill")
    return result


async def hung_initializer(stage: Stage) -> SceneResult:
    result = SceneResult("an initializer hangs")
    t = stage.timing
    await stage.quiet()  # no spare warming: the next initializer to run is a new child's
    status = stage.pool.status()
    room = stage.pool.config.max_children - sum(
        n for state, n in status.children.items() if state not in CHILD.final_states)
    if room < 1:
        raise RuntimeError("no room for a new child: the scene needs max_children > live ones")
    hang_file = stage.control_dir / workload.HANG_NEXT_INITIALIZER
    hang_file.touch()
    before = set(stage.timeline.children)
    # Long jobs on all but num_idle - 1 ready children: the supervisor warms a new spare.
    long_jobs = [stage.submit(workload.render, 90 + i, t.long_job_s,
                              label=f"render frame {90 + i} (long: {t.long_job_s:g}s)")
                 for i in range(status.children.get("ready", 0) - NUM_IDLE + 1)]

    def spare_hangs(_: PoolStatus) -> bool:
        warming = [c for c in probe.children(stage.pool)
                   if c.state == "warming" and c.ident not in before]
        return not hang_file.exists() and len(warming) == 1

    await stage.until(spare_hangs, "a new spare to take the hang")
    (hung,) = [c.ident for c in probe.children(stage.pool)
               if c.state == "warming" and c.ident not in before]
    warming_since = next(at for at, _, e, _ in stage.timeline.children[hung].history
                         if e == "hello")
    fault = stage.timeline.fault(
        f"child {hung}'s initializer hangs (initialize_timeout={t.initialize_timeout:g}s)",
        child=hung, child_events=("timeout",), injected=warming_since)
    meanwhile = stage.submit(workload.render, 91, t.job_s,
                             label=f"render frame 91 (while child {hung} hangs)")
    quick = await stage.settle(meanwhile)
    await stage.recovered(fault)
    slow = [await stage.settle(h) for h in long_jobs]
    hung_history = stage.child_history(hung)
    result.fault = fault.what
    result.check(f"child {hung} was killed at initialize_timeout",
                 ("warming", "timeout", "failed") in hung_history
                 and ("failed", "exit", "killed") in hung_history)
    result.check("the job submitted meanwhile ran at once on another child",
                 quick.outcome == OUTCOME_DONE and hung not in quick.children
                 and quick.started is not None and fault.detected is not None
                 and quick.started < fault.detected)
    result.check("the long jobs finished", all(j.outcome == OUTCOME_DONE for j in slow))
    wait = (quick.started or 0.0) - quick.submitted
    result.answer = (f"job {quick.ident} started {duration(wait)} after submission on child "
                     f"{quick.children[-1] if quick.children else '?'}; child {hung} killed "
                     f"at initialize_timeout and replaced")
    return result


async def idle_child_killed_with_job_in_flight(stage: Stage) -> SceneResult:
    result = SceneResult("an idle child is SIGKILLed as a job is sent to it")
    t = stage.timing
    await stage.quiet()
    # The supervisor hands a job to the first ready child: kill that one, and
    # submit in the same breath, before anyone can know it is dead.
    victim = min(c.ident for c in probe.children(stage.pool) if c.state == "ready")
    fault = stage.kill(victim, f"idle child {victim} killed, a job submitted at once")
    handle = stage.submit(workload.render, 92, t.job_s, label="render frame 92 (in flight)")
    job = await stage.settle(handle)
    await stage.recovered(fault)
    result.fault = fault.what
    result.check("the job was not lost: it ran and is done", job.outcome == OUTCOME_DONE)
    result.check(f"child {victim} is gone and replaced",
                 any(e == "exit" for _, e, _ in stage.child_history(victim)))
    route = " -> ".join(f"child {c}" for c in job.children)
    if job.went_through("requeue"):
        result.answer = (f"job {job.ident} sent to dead child {victim}, requeued (it never "
                         f"started), ran on {route.rsplit(' -> ', 1)[-1]}")
    else:
        result.answer = f"job {job.ident} ran on {route}; child {victim} replaced"
    return result


async def job_timeout(stage: Stage) -> SceneResult:
    result = SceneResult("a job runs past its timeout")
    t = stage.timing
    await stage.quiet()
    handle = stage.submit(workload.stuck, 3600.0,
                          label=f"stuck forever (timeout={t.job_timeout:g}s)",
                          expect="JobTimeout", timeout=t.job_timeout)
    await stage.job_in(handle.id, "running")
    fault = stage.timeline.fault(f"job {handle.id} never returns", job=handle.id,
                                 job_events=("timeout",))
    job = await stage.settle(handle)
    await stage.recovered(fault)
    result.fault = fault.what
    result.check("the caller got JobTimeout", job.error == "JobTimeout")
    result.check("its child was stopped (cancelling means stopping) and is gone",
                 all(any(e == "exit" for _, e, _ in stage.child_history(c))
                     for c in job.children))
    result.answer = (f"JobTimeout at {t.job_timeout:g}s; child "
                     f"{job.children[-1] if job.children else '?'} cancelled the job and exited")
    return result


async def memory_hog(stage: Stage) -> SceneResult:
    result = SceneResult("a job eats memory")
    t = stage.timing
    await stage.quiet()
    limit = f"memory_limit_mb={t.memory_limit_mb:g}"
    handle = stage.submit(workload.hog, t.hog_mb, 3600.0,
                          label=f"allocates {t.hog_mb} MB", expect="ChildDied")
    fault = stage.timeline.fault(f"job {handle.id} grows to {t.hog_mb} MB ({limit})",
                                 job=handle.id, child_events=("kill",))
    job = await stage.settle(handle)
    await stage.recovered(fault)
    result.fault = fault.what
    result.check("the job failed with ChildDied", job.error == "ChildDied")
    result.check("the error says memory", "memory" in job.message)
    result.answer = (f"child {job.children[-1] if job.children else '?'} killed at the next "
                     f"sample: {job.message.split(') ', 1)[-1]}")
    return result


async def business_as_usual(stage: Stage) -> SceneResult:
    result = SceneResult("business as usual")
    t = stage.timing
    await stage.quiet()
    handles = [stage.submit(workload.render, frame, t.job_s, label=f"render frame {frame}")
               for frame in range(1, t.last_jobs + 1)]
    jobs = [await stage.settle(h) for h in handles]
    await stage.quiet()
    result.fault = "none"
    result.check(f"{len(jobs)} ordinary jobs done", all(j.outcome == OUTCOME_DONE for j in jobs))
    result.check("the pool is at its warm target", stage.at_warm_target(stage.pool.status()))
    used = sorted({c for j in jobs for c in j.children})
    result.answer = (f"{len(jobs)} jobs done on children {', '.join(map(str, used))}; "
                     f"{stage.pool.status().children.get('ready', 0)} ready")
    return result


@dataclass(frozen=True)
class Scene:
    title: str
    explain: str
    play: Callable[[Stage], Awaitable[SceneResult]]


SCENES: tuple[Scene, ...] = (
    Scene("a warming child is SIGKILLed",
          "The pool starts two children; each runs an initializer (\"loading a model\"). One is "
          "SIGKILLed half-way, as the OOM killer would. agents-js #1748 waited on such a child "
          "forever; here its exit is an event, and a replacement warms up.",
          warming_child_killed),
    Scene("an initializer hangs",
          "A long job keeps a child busy, so the supervisor warms a new spare (num_idle children "
          "stay idle). That spare's initializer hangs forever, like a stuck download; its "
          "warming state has a deadline, initialize_timeout. Meanwhile a new job runs at once "
          "on a ready child: nobody waits for the hung one.",
          hung_initializer),
    Scene("an idle child dies as a job is sent to it",
          "An idle child is SIGKILLed and a job is submitted in the same instant: it goes to "
          "the dead child. Children ack a job before running it, so a job without an ack "
          "provably never started: it is requeued, not lost and not run twice.",
          idle_child_killed_with_job_in_flight),
    Scene("a job runs past its timeout",
          "A job never returns. At its timeout the caller gets JobTimeout; the child is told to "
          "cancel and exit (a half-run job may have left it in any state) and is replaced.",
          job_timeout),
    Scene("a job eats memory",
          "A job allocates far more than memory_limit_mb. The heartbeat samples memory; the "
          "child is killed and the job fails with ChildDied saying why.",
          memory_hog),
    Scene("business as usual",
          "After all that, a batch of ordinary jobs: the pool serves them as if nothing "
          "had happened.",
          business_as_usual),
)


#: The epilogue (number 0): closing, which must leave nothing behind.
CLOSING = Scene("closing the pool",
                "pool.close(): every job settled, every idle child told to stop and reaped; "
                "afterwards no process and no file descriptor of the pool may remain.",
                business_as_usual)


@dataclass
class Chaos:
    """Everything the chaos section learned, for the summary."""

    timeline: Timeline
    config: PoolConfig
    results: list[SceneResult]
    seconds: float = 0.0


async def play(timing: Timing, timeline: Timeline, control_dir: Path,
               on_scene: Callable[[int, Scene], None],
               scenes: tuple[Scene, ...] = SCENES,
               showing: Callable[[Stage], Any] | None = None) -> Chaos:
    """Run every scene against one pool, then close it. Never raises for a failed scene."""
    config = pool_config(timing, str(control_dir))
    pool = Pool(config)
    timeline.attach(pool)
    stage = Stage(pool, timeline, timing, control_dir)
    chaos = Chaos(timeline, config, [])
    show = showing(stage) if showing is not None else None
    try:
        if show is not None:
            await show.__aenter__()
        for number, scene in enumerate(scenes, 1):
            timeline.begin_scene(scene.title)
            on_scene(number, scene)
            try:
                result = await scene.play(stage)
            except Exception as exc:
                result = SceneResult(scene.title)
                result.check(f"the scene ran to its end ({type(exc).__name__}: {exc})", False)
            result.title = scene.title
            chaos.results.append(result)
            word = "ok" if result.ok else "FAILED: " + "; ".join(result.failed_checks)
            timeline.say("ok" if result.ok else "fail", f"scene {number} {word}")
            if pool.status().state not in ("running", "starting", "backing_off"):
                break
            if number < len(scenes):
                await asyncio.sleep(timing.pause_s)
        timeline.begin_scene(CLOSING.title)
        on_scene(0, CLOSING)
    finally:
        await pool.close()
        if show is not None:
            await show.__aexit__(None, None, None)
    chaos.seconds = timeline.now()
    return chaos
