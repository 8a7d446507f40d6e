"""wayout's own design: the real ``SupervisorCore`` inside a model of the world.

The model runs the very object production runs (``fsm.core.SupervisorCore``);
what it adds is the world around it. From any core state it offers every
event the world could produce next:

* each live child may send its next legal message (hello, ready, init error,
  ack, job done or error, pong, cancel ack), and a child that was stopped or
  killed may still deliver a job report that was already in flight;
* any child may exit at any time; a killed child may be reaped (or ignore the
  signal: then nothing is offered, and its kill_timeout fires instead);
* a child may hang: that is simply not offering its message; deadlines fire;
* a spawn is answered with the process (``Spawned``) or with its failure
  (``ChildExited(code=None)``);
* time may jump to the earliest armed deadline (``DeadlineReached``);
* the parent may stall (``stalls=True``, once per path): time jumps past
  every armed deadline without the core being driven in between (its event
  loop was blocked, or its process stopped), and the core is then driven late;
* the user may submit (job ids 0..jobs-1), cancel, drain and close.

The core's commands are the world's obligations, and its only guide: the
world keeps its own record of each process (asked for, started, greeted,
sent its init, pinged, sent a job, running an acked job, asked to stop or
cancel, killed) and offers only what that record allows, never what the
core's state implies (a core that forgets a command faces a child that was
never asked). Each ack means user code ran (two for one job: it ran twice).
Besides that the world keeps what the user was told and asked: each job's
outcome, whether it started, when it was submitted and cancelled; the
availability last reported; its own count of failures and back-offs; when
drain() and close() were called.

States are deduplicated by a canonical key (times relative to ``now``,
children and jobs renamed: symmetry reduction) of the core and those facts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, NamedTuple, cast

from fsm import errors
from fsm import events as ev
from fsm.codec import child_signer, job_signer
from fsm.config import PoolConfig, job_bound
from fsm.core import SupervisorCore
from fsm.lifecycles import CHILD, JOB
from models.design import Design, Goal, Step
from models.ties import every_order, tie_orders

#: Exit codes the world uses: a crash, a graceful exit, a SIGKILL reap.
CRASH, GRACEFUL, SIGKILLED = 1, 0, -9
#: With ``memory=True``: the pool's limit, and what an offending child reports.
MEMORY_LIMIT_MB, MEMORY_OVER_LIMIT_MB = 100.0, 150.0

#: A child answers a ping where the child lifecycle takes its pong.
_PONGS = CHILD.sources("pong")
_WARMS = CHILD.sources("warmed")
_GREETS = CHILD.sources("hello")

#: The invariants' own words, not read from the specs (an invariant read off
#: the implementation would check nothing): the child states in which a child
#: may hold a job, and the job states in which a job must be on a child.
_MAY_HOLD_A_JOB = frozenset({"busy", "stopping", "failed"})
_ON_A_CHILD = frozenset({"dispatched", "unacked", "running"})

#: What a job's outcome is recorded as: the final state, and for failures the error.
_NOT_FINAL = ""
_NO_CHANGES: Mapping[int, float] = MappingProxyType({})
_NONE_SENT: Mapping[int, int] = MappingProxyType({})
#: A stall's judgement, in the world's own words: job states whose deadline
#: waits on the child (its ack, the end of its stream, its cancel ack), and
#: the kill causes that are a deadline's verdict on a child.
_WAITS_ON_ITS_CHILD = frozenset({"dispatched", "unacked", "cancelling"})
_DEADLINE_KILLS = frozenset({"spawn_timeout", "initialize_timeout", "ping_timeout",
                             "close_timeout", "ack_timeout", "cancel"})
#: Pool states that serve jobs and keep children warm: the goals' own words.
_KEEPS_SERVING = frozenset({"running", "backing_off"})
#: Pool states that keep num_idle children warm and back off past the restart
#: intensity, and the child states that are an idle child, now or once warm.
_KEEPS_WARM = frozenset({"starting", "running"})
_UNCLAIMED = frozenset({"spawned", "warming", "ready"})
_WARMING_UP = frozenset({"spawned", "warming"})
#: Kills that count toward restart intensity: the child failed (it missed a
#: deadline it was asked to meet, failed its initializer, used too much memory,
#: broke the protocol). A kill the core decides for its own reasons (closing,
#: a job that ignored its cancel: the job's fault, not the child's) does not;
#: nor does any kill of a child already asked to stop or killed.
_FAILURE_CAUSES = frozenset({"spawn_timeout", "initialize_timeout", "ping_timeout",
                             "close_timeout", "ack_timeout", "init_error", "memory", "protocol"})


def model_config(children: int = 2, idle: int | None = None, restarts: int = 1,
                 **overrides: Any) -> PoolConfig:
    """The pool the model explores: the smallest integer durations that keep its orderings.

    Deadlines are kept relative to ``now``, so every distinct relative value
    is a distinct state: small integers keep the state space small, and
    integers keep the arithmetic exact. The values still order what matters:
    a queued job outlives a child's spawn plus warm-up (3 > 1 + 1), a job's
    own timeout outlives its ack (2 > 1), ping_timeout exceeds ping_interval
    (as PoolConfig requires), and the back-off delay doubles once before it
    reaches its cap. Equal values make deadlines coincide, and the core then
    fires them in one DeadlineReached (children, then jobs, then the pool).
    """
    settings: dict[str, Any] = {
        "num_idle": max(1, children - 1) if idle is None else idle,
        "max_children": children,
        "max_restarts": restarts,
        "spawn_timeout": 1.0,
        "initialize_timeout": 1.0,
        "ping_interval": 1.0,
        "ping_timeout": 2.0,
        "close_timeout": 1.0,
        "kill_timeout": 1.0,
        "queue_timeout": 3.0,
        "ack_timeout": 1.0,
        "job_timeout": 2.0,
        "start_timeout": 1.0,
        "drain_timeout": 2.0,
        "restart_window": 2.0,
        "backoff_initial": 1.0,
        "backoff_max": 2.0,
    }
    settings.update(overrides)
    return PoolConfig(**settings)


class JobFacts(NamedTuple):
    """What the world knows about one submitted job (its index is its id)."""

    outcome: str = _NOT_FINAL  # "done" | "failed:<Error>" | "cancelled:<Error>"
    started: bool = False  # the core accepted the child's ack: user code ran
    #: Children that acked it, whether the core took the ack or not: each ran
    #: user code. More than one is a job run twice (counted up to 2).
    runs: int = 0
    #: When the user submitted it (model time): its age is bounded (job_bound).
    submitted: float = 0.0
    #: When the user cancelled it, if they did: a cancel is bounded by close_timeout.
    cancelled: float | None = None


class World(NamedTuple):
    """One state: the core (never mutated once built) and the user's view of the jobs.

    Tuples, not frozen dataclasses: the explorer builds one per transition,
    and a frozen dataclass costs three times as much to build.
    """

    core: SupervisorCore
    jobs: tuple[JobFacts, ...]
    key: Any
    #: Children whose process the world already ended (exit reported) but that
    #: the core still lists. Empty for a correct core, which forgets a child
    #: when its exit is reported; a dead process sends nothing ever again.
    dead: frozenset[int] = frozenset()
    #: (child, job): the job was sent to the child, which has not acked it yet.
    #: The world's own memory, not read back from the core: a core that gives
    #: the job to another child still faces this one's ack.
    owed: frozenset[tuple[int, int]] = frozenset()
    #: The world's own record of its processes, kept from the core's commands
    #: and never read back from the core's state (a core that marks a child
    #: failed without sending Kill must face a process that lives on):
    #: processes started and not exited,
    alive: frozenset[int] = frozenset()
    #: children the core sent SIGKILL (only they can be reaped as killed),
    killed: frozenset[int] = frozenset()
    #: children sent a ping they have not answered (only they may pong),
    pinged: frozenset[int] = frozenset()
    #: children sent their init that have not answered it (only they may
    #: become ready or fail their initializer),
    inited: frozenset[int] = frozenset()
    #: per child, when its state last changed or was renewed (a pong):
    #: how long it has been in its state, in model time, bounded by the
    #: state's own timeout,
    changed: Mapping[int, float] = _NO_CHANGES
    #: children the core asked to spawn (SpawnChild) whose process has not
    #: started, or failed to, yet (only they may be answered so),
    asked: frozenset[int] = frozenset()
    #: processes started that have not said hello yet,
    greets: frozenset[int] = frozenset()
    #: (child, job): jobs a child acked and runs in user code (only it may
    #: report on them, whatever the core did with the job since),
    holds: frozenset[tuple[int, int]] = frozenset()
    #: children asked to exit (SendStop, or SendCancel: a cancelled child
    #: exits): only they exit gracefully, and only they can miss close_timeout,
    stopped: frozenset[int] = frozenset()
    #: (child, job): cancels sent and not answered yet (only they may be
    #: answered with a CancelAck),
    cancels: frozenset[tuple[int, int]] = frozenset()
    #: what the core last reported of its availability (ReportAvailability):
    #: what users, metrics and /readyz see,
    told: bool | None = None
    #: the failures the world saw (a crash, a failed spawn, a kill for the
    #: child's own fault), the newest max_restarts + 1 within restart_window,
    fails: tuple[float, ...] = ()
    #: the back-offs since a child last became ready (capped where the
    #: delay stops growing): restart intensity in the world's own count,
    backoffs: int = 0
    #: The parent has stalled once on this path (``stalls=True``). At most once:
    #: a parent that stalls forever keeps every job's queue budget (counted from
    #: its submission) growing, and the state space with it.
    stalled: bool = False
    #: whether a child became ready since the last of those failures
    #: (spawning is proven to work: availability may count on a new child),
    proven: bool = False
    #: and when the user called drain() (until the drain ended), and when
    #: close() was called or closing began (until the pool closed).
    drained_at: float | None = None
    closed_at: float | None = None
    #: Whether the user called drain() or close(): from then on every submit is refused.
    ended: bool = False
    #: Per child, the jobs sent to its process (SendJob commands), kept only
    #: where max_jobs_per_child recycles children (capped one past it): a
    #: process runs no more, and one that ran that many is retired.
    given: Mapping[int, int] = _NONE_SENT


def _user_facts(w: World, now: float) -> tuple[Any, ...]:
    """What the world keeps besides the core and its processes (what the user
    was told and asked, its own count of failures and back-offs), times
    relative to ``now``: one part of both state keys, written once so that a
    new fact cannot go into one key and not the other (an unsound merge)."""
    fails = w.fails
    return (w.told, tuple([t - now for t in fails]) if fails else (), w.backoffs, w.stalled,
            w.proven, None if w.drained_at is None else w.drained_at - now,
            None if w.closed_at is None else w.closed_at - now, w.ended)


class WayoutDesign(Design[World]):
    """``SupervisorCore`` under every behaviour of children, timers and the user."""

    name = "wayout"
    title = "wayout's SupervisorCore (the production code) against every world behaviour"
    expected = None
    source = "fsm/core.py"

    def __init__(
        self,
        children: int = 2,
        jobs: int = 3,
        restarts: int = 1,
        *,
        idle: int | None = None,
        config: PoolConfig | None = None,
        stale_reports: bool = True,
        cancel: bool = True,
        drain: bool = True,
        close: bool = True,
        pong_when_pinged: bool = True,
        stale_pongs: bool = False,
        symmetric_jobs: bool = True,
        compiled: bool = True,
        bad_messages: bool = False,
        foreign_reports: bool = False,
        memory: bool = False,
        stalls: bool = False,
        ties: str = "core",
        timeout: float | None = None,
    ) -> None:
        self.config = config if config is not None else model_config(children, idle, restarts)
        cfg = self.config
        self.jobs = jobs
        self.stale_reports = stale_reports
        self.cancel = cancel
        self.drain = drain
        self.close = close
        self.pong_when_pinged = pong_when_pinged
        # A pong sent before the parent stopped or killed its child still
        # arrives (a ping crossing a stop). Off by default: a pong where the
        # lifecycle takes none is no event for a correct core, and keeping the
        # question grows wayout's state space by a sixth; the orderings
        # models (small bounds) turn it on.
        self.stale_pongs = stale_pongs
        self.symmetric_jobs = symmetric_jobs
        # The core's compiled trigger engine: the spec's own edge map instead of
        # the transitions machine, proven equal by tests/test_core_engines.py.
        self.compiled = compiled
        # Out-of-protocol bytes and memory over the limit: off by default, they
        # only add ways to kill a child, which exits and crashes already cover
        # for the pool's books; the tests turn them on with small bounds.
        self.bad_messages = bad_messages
        # A lying child: a well-formed report (done, raised) on a job it does
        # not run (in the world's record), while that job has no outcome. Off by default (the
        # honest world sends only what it was asked); WayoutRecycle turns it on.
        self.foreign_reports = foreign_reports
        self.memory = memory
        # The parent's own stall (issue 15): from any state with a deadline, time
        # may jump past every deadline before the core is driven again. Off by
        # default: it about triples the states (WayoutStalls turns it on, at
        # smaller bounds).
        self.stalls = stalls
        self.stall_threshold = cfg.stall_threshold
        #: How far past its latest deadline a stall leaves the core: more than
        #: stall_threshold, or the core and the world would take the stall for
        #: an ordinary late wake (1 s for model_config's 0.5 s threshold).
        self.stall_jump = max(1.0, 2 * cfg.stall_threshold)
        #: The orders of deadlines due at one instant: "reduced" (every order
        #: that can differ in effect), "every" (every permutation), "core"
        #: (the core's own order only).
        self._tie_orders = {"reduced": tie_orders, "every": every_order,
                            "core": _core_order}[ties]
        if memory and cfg.memory_limit_mb is None:
            self.config = cfg = replace(cfg, memory_limit_mb=MEMORY_LIMIT_MB)
        #: Jobs a process may run (max_jobs_per_child; None: no recycling).
        self.recycle = cfg.max_jobs_per_child
        #: The timeout the world passes to each submit (None: the pool's job_timeout).
        self.timeout = timeout
        #: How long a job may run: its own timeout, as the world asked for it.
        self.run_bound = cfg.job_timeout if timeout is None else timeout
        #: The longest any job of the model may wait for its outcome.
        self.job_bound = job_bound(cfg, timeout)
        #: What a stall may add to a job's wait beyond its own length: one
        #: deadline that waits on a child, renewed in full.
        self.stall_allowance = max(cfg.duration(setting) for setting in (
            "spawn_timeout", "initialize_timeout", "ping_timeout", "close_timeout",
            "kill_timeout", "ack_timeout"))
        #: The failures the world keeps: the newest max_restarts + 1.
        self._fails_kept = cfg.max_restarts + 1
        #: The back-off count at which the delay stops growing (backoff_max).

    def parameters(self) -> str:
        c = self.config
        return (f"children={c.max_children} idle={c.num_idle} jobs={self.jobs} "
                f"max_restarts={c.max_restarts}" + (" stalls" if self.stalls else "")
                + ("" if self.recycle is None else f" max_jobs_per_child={self.recycle}")
                + (" foreign_reports" if self.foreign_reports else ""))

    # --- states -------------------------------------------------------------

    def _world(self, w: World) -> World:
        """``w`` with what the world remembers of forgotten children dropped, and its key."""
        core = w.core
        children = core.children
        now = core.now
        # The hot path of the explorer (every transition): a set is rebuilt
        # only when it names a child the core forgot, which few steps do
        # (``ids >= s`` asks that in C), and the world only if one was.
        ids = children.keys()
        (_, facts, _, dead, owed, alive, killed, pinged, inited, changed, asked, greets, holds,
         stopped, cancels, told, fails, backoffs, stalled, proven, drained_at, closed_at,
         ended, given) = w
        # A child the core forgot (exited, or abandoned unreaped after SIGKILL)
        # is read no more: what the world remembers of it goes too.
        if dead or not (ids >= alive and ids >= killed and ids >= pinged and ids >= inited
                        and ids >= asked and ids >= greets and ids >= stopped
                        and ids >= changed.keys() and ids >= given.keys()
                        and _pairs_known(owed, ids)
                        and _pairs_known(holds, ids) and _pairs_known(cancels, ids)):
            if dead:
                dead = frozenset(c for c in dead if c in children)
            if owed:
                owed = _pairs_kept(owed, children, dead)
            if holds:
                holds = _pairs_kept(holds, children, dead)
            if cancels:
                cancels = _pairs_kept(cancels, children, dead)
            sets = []
            for kept in (alive, killed, pinged, inited, asked, greets, stopped):
                if kept and not ids >= kept:
                    kept = frozenset(c for c in kept if c in children)
                sets.append(kept)
            alive, killed, pinged, inited, asked, greets, stopped = sets
            if not ids >= changed.keys():
                changed = MappingProxyType({c: t for c, t in changed.items() if c in children})
            if not ids >= given.keys():
                given = MappingProxyType({c: n for c, n in given.items() if c in children})
        horizon = now - self.config.restart_window
        if fails and fails[0] <= horizon:
            fails = tuple(t for t in fails if t > horizon)
        w = _WORLD_NEW(World, (core, facts, None, dead, owed, alive, killed, pinged, inited,
                               changed, asked, greets, holds, stopped, cancels, told, fails,
                               backoffs, stalled, proven, drained_at, closed_at, ended, given))
        if self.symmetric_jobs:
            # The key goes in place of the None above: a tuple built once
            # (NamedTuple._replace costs as much as the rest of this function).
            return _WORLD_NEW(World, (core, facts, self._symmetric_key(w), *w[3:]))
        recycle = self.config.max_jobs_per_child
        jobs = w.jobs

        def sig(c: int) -> str:
            return repr(children[c].key(now, True, recycle))

        dead_keys = tuple(sorted(sig(c) for c in dead))
        pairs = tuple(tuple(sorted((sig(c), j) for c, j in kept))
                      for kept in (owed, holds, cancels))
        record = tuple(sorted((sig(c), c in alive, c in killed, c in pinged, c in inited,
                               c in asked, c in greets, c in stopped,
                               changed.get(c, now) - now, given.get(c, 0)) for c in children))
        ages = tuple(now - f.submitted if not f.outcome else None for f in jobs)
        return w._replace(key=(self._snapshot(core), jobs, ages, dead_keys, pairs, record,
                               _user_facts(w, now)))

    def _symmetric_key(self, w: World) -> Any:
        """The state up to renaming children *and* jobs, and without text.

        Two states that differ only in which job id or child id plays which
        role behave alike (ids are names; the core compares none of them), so
        they are explored once. Each child is described together with the job
        it holds; queued jobs by their place in the queue; settled jobs by
        their outcome. Reasons (free text) are left out: no decision reads
        them. Everything is relative to ``now``.
        """
        # The user's facts (told ... ended) are _user_facts' to read.
        (core, facts, _, dead, owed, alive, killed, pinged, inited, changed, asked, greets, holds,
         stopped, cancels_asked, *_, given) = w
        now = core.now
        recycle = self.config.max_jobs_per_child
        queue = core.queue
        jobs = core.jobs
        nfacts = len(facts)
        # Signatures are tuples of comparable values (fsm.codec writes a
        # missing time as +inf), so they sort without a key function (the hot path).
        sign_job, sign_child = _SIGN_JOB, _SIGN_CHILD

        def job_sig(jid: int, holder: int) -> tuple[Any, ...]:
            # The job's own fields as fsm.codec signs them (its submission
            # time only where it may go back to the queue), then its place.
            j = jobs[jid]
            f = facts[jid] if jid < nfacts else None
            return sign_job(
                j, now, recycle,
                queue.index(jid) if j.state == "queued" and jid in queue else -1,
                j.child is not None and j.child == holder, j.child is not None,
                () if f is None else (bool(f.outcome), f.started, f.runs,
                                      None if f.outcome else now - f.submitted,
                                      None if f.outcome or f.cancelled is None
                                      else now - f.cancelled),
            )

        held = set()
        child_sigs = []
        # A child owes at most one ack, runs at most one job and is asked to
        # cancel at most one: it takes a job only when ready.
        owes = dict(owed) if owed else _NO_PAIRS
        runs = dict(holds) if holds else _NO_PAIRS
        cancels = dict(cancels_asked) if cancels_asked else _NO_PAIRS
        for cid, c in core.children.items():
            jsig: tuple[Any, ...] = ()
            job = c.job
            if job is not None:
                if job in jobs:
                    held.add(job)
                    jsig = job_sig(job, cid)
                else:
                    jsig = ("gone",)
            # The job this child still owes an ack for: usually the one it holds.
            owe = owes.get(cid)
            osig: Any = () if owe is None else "held" if owe == job else (
                job_sig(owe, cid) if owe in jobs else "gone", facts[owe].runs)
            # A job the world pairs with a child (a job run, a cancel asked),
            # told apart from the one the core has it hold.
            run = runs.get(cid)
            rsig: Any = () if run is None else "held" if run == job else (
                job_sig(run, -2) if run in jobs else "gone")
            cancel = cancels.get(cid)
            csig: Any = () if cancel is None else "held" if cancel == job else (
                job_sig(cancel, -2) if cancel in jobs else "gone")
            child_sigs.append(sign_child(
                c, now, recycle, jsig, cid in dead, osig, cid in alive, cid in killed,
                cid in pinged, cid in inited, changed.get(cid, now) - now, cid in asked,
                cid in greets, rsig, cid in stopped, csig, given.get(cid, 0)))
        free = [job_sig(jid, -1) for jid in jobs if jid not in held]
        # A settled job is settled: which outcome it had changes nothing to come.
        settled = 0
        for jid, f in enumerate(facts):
            if f.outcome and jid not in jobs:
                settled += 1
        pool = core.pool
        failures = core.failures
        return (
            pool.state, None if pool.deadline is None else pool.deadline - now,
            None if core.heartbeat_at is None else core.heartbeat_at - now,
            tuple([t - now for t in failures]) if failures else (),
            core.spawn_proven,
            core.backoff_level,
            core.reported,
            _sorted(child_sigs),
            _sorted(free),
            settled,
            nfacts,
            *_user_facts(w, now),
        )

    def _snapshot(self, core: SupervisorCore) -> Any:
        """The core's own canonical snapshot (the core bounds its failure times
        and back-off level itself, so it is finite for a world that keeps failing)."""
        return core.snapshot(canonical=True)

    def initial(self) -> World:
        core = SupervisorCore(self.config, now=0.0, compiled=self.compiled)
        # Start is applied as any event: the world records what it asks for.
        return self.apply(World(core, (), None), ev.Start(now=0.0)).state

    def key(self, state: World) -> Any:
        return state.key

    # --- the world's events ---------------------------------------------------

    def events(self, w: World) -> list[ev.Event]:
        """Every event the world may produce next in ``w``."""
        core = w.core
        now = core.now
        out: list[ev.Event] = []
        owed, holds, cancels = w.owed, w.holds, w.cancels
        for cid in core.children:
            # Only what the world was asked for happens, read from its own
            # record, never from the core's state: a process starts (or
            # cannot) only when it was asked for,
            if cid in w.asked:
                out.append(ev.Spawned(now=now, child=cid, pid=100 + cid))
                out.append(ev.ChildExited(now=now, child=cid, code=None))
                continue
            if cid not in w.alive:
                continue  # never started, or exited already: it says nothing
            if cid in w.greets:
                out.append(ev.Hello(now=now, child=cid))
            # and a child answers what it was sent, whatever state the core
            # keeps it in: its init (once), and each ping (a pong of its own
            # accord only in the world of pong_when_pinged=False).
            if cid in w.inited:
                out.append(ev.Ready(now=now, child=cid))
                out.append(ev.InitError(now=now, child=cid, reason="ImportError"))
            if cid in w.pinged if self.pong_when_pinged else core.children[cid].state in _PONGS:
                out.append(ev.Pong(now=now, child=cid))
            killed = cid in w.killed
            # A killed child still delivers a report that was in flight only
            # with stale_reports: the world's choice.
            speaks = not killed or self.stale_reports
            if owed and speaks:
                # An ack the child owes, whatever the core did with the job since
                # (it may cross the parent's cancel, or its ack timeout).
                out.extend(ev.JobAck(now=now, child=cid, job=jid)
                           for c, jid in sorted(owed) if c == cid)
            if holds and speaks:
                # The job the child acked runs until it reports: a result or
                # an error, whatever the core did with the job since.
                for c, jid in sorted(holds):
                    if c == cid:
                        out.append(ev.JobDone(now=now, child=cid, job=jid, result=None))
                        out.append(ev.JobRaised(now=now, child=cid, job=jid,
                                                error_type="ValueError", message="boom"))
            if cancels and speaks:
                # A cancel is answered by the child that was sent it, for a job
                # it runs or has not started yet (then it never starts).
                out.extend(ev.CancelAck(now=now, child=cid, job=jid)
                           for c, jid in sorted(cancels)
                           if c == cid and ((c, jid) in holds or (c, jid) in owed))
            # Only a process sent SIGKILL is reaped as killed (or ignores it:
            # then nothing is offered); only one asked to stop exits gracefully;
            # any other may crash at any time.
            code = SIGKILLED if killed else GRACEFUL if cid in w.stopped else CRASH
            out.append(ev.ChildExited(now=now, child=cid, code=code))
            if not killed:
                if self.bad_messages:
                    out.append(ev.BadMessage(now=now, child=cid, reason="garbled frame"))
                if self.foreign_reports:
                    # A lie: a report on a job that has no outcome yet and that
                    # this child neither runs nor owes an ack for (never sent
                    # it, or done with it), in the world's own record.
                    for jid, f in enumerate(w.jobs):
                        if not f.outcome and (cid, jid) not in holds and (cid, jid) not in owed:
                            out.append(ev.JobDone(now=now, child=cid, job=jid, result=None))
                            out.append(ev.JobRaised(now=now, child=cid, job=jid,
                                                    error_type="ValueError", message="lie"))
                if self.memory:
                    # The runtime answers SampleMemory; a sample at any time is harmless.
                    out.append(ev.MemorySample(now=now, child=cid, mb=MEMORY_OVER_LIMIT_MB))
        deadline = core.next_deadline()
        if deadline is not None:
            # Deadlines due at one instant fire in each order that can differ in
            # effect (models/ties.py), not only in the core's own.
            at = max(deadline, now)
            out.extend(ev.DeadlineReached(now=at, order=order)
                       for order in self._tie_orders(core, at))
            if self.stalls and not w.stalled:
                # The parent stalls: nobody drives the core until stall_jump past
                # its latest deadline, so every deadline armed now passes
                # unobserved. One length only (past all of them), once per path,
                # keeps the state space finite and small.
                out.append(ev.DeadlineReached(now=_latest_deadline(core) + self.stall_jump))
        if len(w.jobs) < self.jobs:
            out.append(ev.Submit(now=now, job=len(w.jobs), timeout=self.timeout))
        if self.cancel:
            for jid, job in core.jobs.items():
                if job.state != "cancelling":
                    out.append(ev.Cancel(now=now, job=jid))
        # The user may call drain() until they called it or close(), and
        # close() until they called it (or closing began): the user's choice,
        # not read off the pool lifecycle (a table that drops an edge must
        # still face the call).
        if self.drain and not w.ended:
            out.append(ev.Drain(now=now))
        if self.close and w.closed_at is None and core.pool_state != "closed":
            out.append(ev.Close(now=now))
        return out

    def apply(self, w: World, event: ev.Event, labelled: bool = True) -> Step[World]:
        """What happens when ``event`` occurs in ``w``: the step to the next state.

        ``labelled=False`` (the search's own expansion) labels only a step that
        breaks something: see ``Design.search_successors``."""
        core = w.core.clone()
        try:
            commands = core.handle(event)
        except Exception as exc:  # the core must take every event the world can produce
            label = _label(w.core, event)
            return Step(label, w, broken=(
                f"the core raised {type(exc).__name__} on {label}: {exc}",))
        # The explorer applies every event of every state: this loop is its hot
        # path, so the job facts are copied only when a command changes them,
        # and commands are told apart by exact type.
        facts = w.jobs
        jobs: list[JobFacts] | None = None
        event_type = type(event)
        if event_type is _SUBMIT:
            jobs = [*facts, JobFacts(submitted=event.now)]
        # The parent stalled before this event: it is driven more than the stall
        # threshold past its next deadline (the world's own test, from the core
        # as it was before the event).
        stalled = (self.stalls and event_type is _DEADLINE
                   and _late_by(w.core, event.now) > self.stall_threshold)
        # One unpacking, not twenty attribute reads: this runs for every transition.
        (_, _, _, dead, owed, alive, killed, pinged, inited, changed, asked, greets, holds,
         stopped, cancels, told, fails, backoffs, _, proven, drained_at, closed_at, _,
         given) = w
        if stalled:
            # A stall adds its own length to every wait, and may restart the phase
            # each job is in (a renewed deadline runs its full timeout from the
            # stall's end): each bound (a job's, a cancel's, drain()'s and
            # close()'s) grows by the stall's length plus the longest such timeout.
            shift = (event.now - w.core.now) + self.stall_allowance
            jobs = [f if f.outcome else f._replace(
                submitted=f.submitted + shift,
                cancelled=None if f.cancelled is None else f.cancelled + shift)
                for f in facts]
            drained_at = None if drained_at is None else drained_at + shift
            closed_at = None if closed_at is None else closed_at + shift
        now = core.now
        # The user's calls, each with its promise: a cancel and a close are
        # bounded, a drain refuses new jobs and lets accepted ones finish.
        refused = None
        if event_type is _SUBMIT and w.ended:
            refused = cast(ev.Submit, event).job
        elif event_type is _CANCEL_CALL:
            jid = cast(ev.Cancel, event).job
            if jid < len(facts) and not facts[jid].outcome and facts[jid].cancelled is None:
                jobs = list(facts)
                jobs[jid] = facts[jid]._replace(cancelled=now)
        elif event_type is _DRAIN_CALL and drained_at is None:
            drained_at = now
        elif event_type is _CLOSE_CALL and closed_at is None:
            closed_at = now
        # Accepted jobs may be aborted only by close() or drain_timeout.
        began = w.drained_at if w.drained_at is not None else drained_at  # before a stall's shift
        may_abort = closed_at is not None or began is None or (
            now >= began + self.config.drain_timeout)
        changes: dict[int, float] | None = None
        broken: list[str] = []
        #: (child, job) of a report on a job the child does not run (a lie:
        #: ``foreign_reports``), read from the world's record before the event.
        foreign: tuple[int, int] | None = None
        if event_type is _EXITED:
            gone = cast(ev.ChildExited, event).child
            dead = dead | {gone}
            if gone not in stopped and gone not in killed:
                # Neither asked to stop nor killed: a crash, or a spawn that failed.
                fails, proven = (*fails, now), False
            alive, asked, greets = alive - {gone}, asked - {gone}, greets - {gone}
        elif event_type is _SPAWNED:
            born = cast(ev.Spawned, event).child
            alive, asked, greets = alive | {born}, asked - {born}, greets | {born}
        elif event_type is _HELLO:
            greets = greets - {cast(ev.Hello, event).child}
        elif event_type is _PONG:
            pinged = pinged - {cast(ev.Pong, event).child}
        elif event_type is _READY or event_type is _INIT_ERROR:
            inited = inited - {cast(ev.Ready, event).child}
            if event_type is _READY:
                proven = True  # a child warmed: spawning works (until the next failure)
        elif event_type is _ACK:
            ack: ev.JobAck = event  # type: ignore[assignment]
            owed = owed - {(ack.child, ack.job)}
            holds = holds | {(ack.child, ack.job)}
            # The child acks, then calls user code: whatever the core makes of
            # the ack, the job ran here.
            if jobs is None:
                jobs = list(facts)
            f = jobs[ack.job]
            jobs[ack.job] = JobFacts(f.outcome, f.started, min(f.runs + 1, 2), f.submitted,
                                     f.cancelled)
            if f.runs:
                broken.append(f"job {ack.job} ran twice: child {ack.child} acked it and called "
                              "user code after another child had")
        elif event_type is _DONE or event_type is _RAISED or event_type is _CANCEL_ACK:
            report = cast(ev.JobDone, event)
            pair = (report.child, report.job)
            if event_type is not _CANCEL_ACK and pair not in holds:
                foreign = pair
            holds, cancels = holds - {pair}, cancels - {pair}
            if event_type is _CANCEL_ACK:
                owed = owed - {pair}  # cancelled before it started: it never will
        # The questions outstanding when the core acts on this event (its own
        # transitions below may make the world forget them): a child is blamed
        # for a missed deadline only if it was asked something and is silent.
        # (Kept as they are, immutable; a kill joins them: most steps kill no one.)
        pinged_before, inited_before, starting_before = pinged, inited, (greets, asked)
        spawns = 0
        backed_off_at: float | None = None
        dispatched_from_ready: list[int] = []
        for cmd in commands:
            kind = type(cmd)
            if kind is _TRANSITIONED:
                t: ev.Transitioned = cmd  # type: ignore[assignment]
                if stalled and t.event == "timeout" and (
                        t.kind == "child" or t.source in _WAITS_ON_ITS_CHILD):
                    # A deadline that waits on a child passed while nobody read
                    # the child: it proves nothing, and must not judge.
                    broken.append(
                        f"{t.kind} {t.ident} left {t.source} by its timeout, which passed "
                        f"while the parent was stalled ({event.now - w.core.now:g}s not "
                        "driven): its child may have answered unread")
                if t.kind == "child":
                    if changes is None:
                        changes = dict(changed)
                    changes[t.ident] = t.now
                    # A reduction, read off the spec: an answer to a ping, an
                    # init or a spawn that arrives where the lifecycle takes no
                    # pong (no warmed, no hello) is no event for the child, so
                    # the world need not remember a question its child has left behind.
                    dest = t.dest
                    if dest not in _PONGS and t.ident in pinged and not self.stale_pongs:
                        pinged = pinged - {t.ident}
                    if dest not in _WARMS and t.ident in inited:
                        inited = inited - {t.ident}
                    if dest not in _GREETS and t.ident in greets:
                        greets = greets - {t.ident}
                    if dest == "ready" and t.source == "warming":
                        backoffs = 0  # a child became ready: back-off starts over
                elif t.kind == "pool":
                    if t.dest == "backing_off":
                        backoffs = min(backoffs + 1, self.config.max_backoff_level)
                        backed_off_at = t.now
                        recent = sum(1 for f in fails if f > now - self.config.restart_window)
                        if recent <= self.config.max_restarts:
                            broken.append(
                                f"the pool backed off after {recent} failures within "
                                f"restart_window={self.config.restart_window:g}s, not more "
                                f"than max_restarts={self.config.max_restarts}")
                    elif t.source == "backing_off":
                        fails = ()  # the back-off paid for them: a new budget
                    if t.dest == "closing":
                        # The drain is over (its jobs finished, or its time ran
                        # out); closing is bounded from here, whoever began it.
                        drained_at = None
                        if closed_at is None:
                            closed_at = t.now
                    elif t.dest == "closed":
                        closed_at = None  # the promise kept
                if t.event == "dispatch":
                    if t.kind == "child" and t.source == "ready":
                        dispatched_from_ready.append(t.ident)
                elif t.event == "ack" and t.kind == "job":
                    if jobs is None:
                        jobs = list(facts)
                    f = jobs[t.ident]
                    jobs[t.ident] = JobFacts(f.outcome, True, f.runs, f.submitted, f.cancelled)
            elif kind is _SPAWN:
                spawns += 1
                asked = asked | {cast(ev.SpawnChild, cmd).child}
            elif kind is _PING:
                pinged = pinged | {cast(ev.SendPing, cmd).child}
            elif kind is _INIT:
                inited = inited | {cast(ev.SendInit, cmd).child}
            elif kind is _KILL:
                kill: ev.Kill = cmd  # type: ignore[assignment]
                victim = kill.child
                if stalled and kill.cause in _DEADLINE_KILLS:
                    broken.append(f"child {victim} was killed for {kill.cause}, a deadline "
                                  "that passed while the parent was stalled")
                silent = self._blame(
                    kill, (pinged_before, inited_before, starting_before[0] | starting_before[1]),
                    owed, stopped, cancels)
                if kill.cause == "protocol" and event_type is not _BAD and not (
                        foreign is not None and foreign[0] == victim):
                    # The world sends only what its record allows: an answer
                    # to what it was asked, a report on a job it runs.
                    silent = "it sent only what it was asked for (a legal, if late, message)"
                if silent:
                    broken.append(f"child {victim} was killed for {kill.cause}, but {silent}")
                if (kill.cause in _FAILURE_CAUSES and victim not in stopped
                        and victim not in killed):
                    fails, proven = (*fails, now), False  # spawning no longer proven
                killed = killed | {victim}
                if victim in stopped:
                    # Killed, it is no longer asked to stop (a reap is all that is left).
                    stopped = stopped - {victim}
            elif kind is _SEND_JOB:
                sent: ev.SendJob = cmd  # type: ignore[assignment]
                if sent.child not in dispatched_from_ready:
                    broken.append(f"job {sent.job} was sent to child {sent.child}, which was "
                                  "not ready")
                if sent.child in killed:
                    # In the world's record: the core sentenced that process.
                    broken.append(f"job {sent.job} was sent to child {sent.child}, which the "
                                  "core had already killed")
                owed = owed | {(sent.child, sent.job)}
                if self.recycle is not None:
                    # Recycling, in the world's own count of the jobs sent to a process.
                    n = given.get(sent.child, 0) + 1
                    if n > self.recycle:
                        broken.append(f"job {sent.job} was sent to child {sent.child}, its "
                                      f"job number {n}, past max_jobs_per_child="
                                      f"{self.recycle}: the child should have been retired")
                    given = MappingProxyType({**given, sent.child: min(n, self.recycle + 1)})
            elif kind is _STOP:
                stopped = stopped | {cast(ev.SendStop, cmd).child}
            elif kind is _CANCEL:
                cancel: ev.SendCancel = cmd  # type: ignore[assignment]
                stopped = stopped | {cancel.child}
                cancels = cancels | {(cancel.child, cancel.job)}
            elif kind is _REPORT:
                told = cast(ev.ReportAvailability, cmd).available
            elif kind is _SETTLE:
                if jobs is None:
                    jobs = list(facts)
                settled: ev.SettleJob = cmd  # type: ignore[assignment]
                broken.extend(self._settle(jobs, settled, event))
                if foreign is not None and settled.job == foreign[1]:
                    broken.append(f"job {settled.job} was settled ({settled.outcome.state}) by "
                                  f"a report from child {foreign[0]}, which does not run it: "
                                  "it was never sent that job, or had reported it already")
                if (settled.outcome.error is errors.PoolClosed and not may_abort
                        and settled.job != refused):
                    broken.append(f"job {settled.job} was accepted before drain() but failed "
                                  "PoolClosed before drain_timeout: a drain lets accepted "
                                  "jobs finish")
        for cid in () if core.children.keys() >= alive else alive:
            if cid not in core.children and cid not in killed:
                # Forgotten with SIGKILL sent is abandonment, which the core
                # reports; forgotten without it is a process that runs on.
                broken.append(f"child {cid}'s process still runs, but the core forgot it "
                              "without killing it")
        if backed_off_at is not None and core.pool.state == "backing_off":
            # The k-th back-off in a row lasts backoff_initial * 2^(k-1), up to backoff_max.
            cfg = self.config
            want = min(cfg.backoff_initial * 2 ** (backoffs - 1), cfg.backoff_max)
            got = None if core.pool.deadline is None else core.pool.deadline - backed_off_at
            if got != want:
                broken.append(f"back-off {backoffs} in a row lasts {got}s, not backoff_initial "
                              f"* 2^{backoffs - 1} capped at backoff_max = {want:g}s")
        if refused is not None and (jobs is None or jobs[refused].outcome != "failed:PoolClosed"):
            broken.append(f"job {refused} was submitted after drain() or close(), but not "
                          "refused (PoolClosed)")
        if changes is not None:
            changed = MappingProxyType(changes)
        if len(fails) > self._fails_kept:
            fails = fails[-self._fails_kept:]
        world = _WORLD_NEW(World, (
            core, facts if jobs is None else tuple(jobs), None, dead, owed, alive, killed, pinged,
            inited, changed, asked, greets, holds, stopped, cancels, told, fails, backoffs,
            w.stalled or stalled, proven, drained_at, closed_at,
            w.ended or event_type is _DRAIN_CALL or event_type is _CLOSE_CALL, given))
        label = _label(w.core, event) if labelled or broken else ""
        if label and foreign is not None:
            label += f", a lie: it does not run job {foreign[1]}"
        return _STEP_NEW(Step, (label, self._world(world), event_type is _DEADLINE, spawns,
                                tuple(broken) if broken else ()))

    @staticmethod
    def _blame(kill: ev.Kill, asked: tuple[frozenset[int], frozenset[int], frozenset[int]],
               owed: frozenset[tuple[int, int]], stopped: frozenset[int],
               cancels: frozenset[tuple[int, int]]) -> str:
        """Why ``kill`` blames a child that answered everything it was asked ("" if it is fair).

        A kill for a missed deadline says the child was asked something and
        did not answer: start (spawn_timeout), initialize, pong, ack, stop,
        cancel. The world's record says whether the question was asked.
        """
        pinged, inited, starting = asked
        cid, cause = kill.child, kill.cause
        if cause == "ping_timeout" and cid not in pinged:
            return "it had answered every ping it was sent"
        if cause == "initialize_timeout" and cid not in inited:
            return "it was not running an initializer it was sent"
        if cause == "spawn_timeout" and cid not in starting:
            return "it was not starting: never asked for, or it had said its hello"
        if cause == "ack_timeout" and not any(c == cid for c, _ in owed):
            return "it owed no ack: it had acked every job it was sent"
        if cause == "close_timeout" and cid not in stopped:
            return "it was never asked to stop"
        if cause == "cancel" and not any(c == cid for c, _ in cancels):
            return "it was never asked to cancel a job (or had answered)"
        return ""

    @staticmethod
    def _settle(jobs: list[JobFacts], cmd: ev.SettleJob, event: ev.Event) -> list[str]:
        jid, outcome = cmd.job, cmd.outcome
        if not 0 <= jid < len(jobs):
            return [f"job {jid} was settled but never submitted"]
        facts = jobs[jid]
        error = outcome.error.__name__ if outcome.error is not None else ""
        recorded = outcome.state + (f":{error}" if error else "")
        if facts.outcome:
            return [f"job {jid} was settled twice: {facts.outcome}, then {recorded}"]
        # (Built directly: NamedTuple._replace costs three times as much.)
        jobs[jid] = JobFacts(recorded, facts.started, facts.runs, facts.submitted,
                             facts.cancelled)
        broken = []
        if outcome.state == "done" and not (isinstance(event, ev.JobDone) and event.job == jid):
            broken.append(f"job {jid} was reported done, but no child returned its result")
        if outcome.error is errors.ChildDied and not facts.started:
            broken.append(f"job {jid} failed with ChildDied, but it never started: it should "
                          "have been requeued")
        if outcome.state == "failed" and outcome.error is errors.JobFailed and not (
                isinstance(event, ev.JobRaised) and event.job == jid):
            broken.append(f"job {jid} was reported raising, but no child reported an error")
        return broken

    def silent_step(self, state: World) -> Step[World] | None:
        deadline = state.core.next_deadline()
        if deadline is None:
            return None
        return self.apply(state, ev.DeadlineReached(now=max(deadline, state.core.now)))

    def successors(self, state: World) -> Iterator[Step[World]]:
        for event in self.events(state):
            yield self.apply(state, event)

    def search_successors(self, state: World) -> list[Step[World]]:
        apply = self.apply
        return [apply(state, event, False) for event in self.events(state)]

    # --- properties -------------------------------------------------------------

    def invariants(self, state: World) -> Sequence[str]:
        core = state.core
        broken = []
        children = core.children
        cfg = self.config
        if len(children) > cfg.max_children:
            broken.append(f"{len(children)} live children exceed max_children="
                          f"{cfg.max_children}")
        for cid in state.dead:
            broken.append(f"child {cid}'s process exited, but the core still lists it as "
                          f"{children[cid].state}")
        # Bounded settlement, in model time kept by the world: each child
        # leaves its state (or renews it, by a pong) within that state's own
        # timeout, and each job reaches its outcome within its bound. A core
        # that keeps either waiting breaks safety, whatever the world may do next.
        now = core.now
        for cid, since in state.changed.items():
            child = children.get(cid)
            if child is None:
                continue
            setting = CHILD.state(child.state).timeout
            if setting is not None and now - since > cfg.duration(setting):
                broken.append(f"child {cid} has been {child.state} for {now - since:g}s, past "
                              f"{setting}={cfg.duration(setting):g}s")
        broken.extend(self._deadlines_within_bounds(core))
        broken.extend(_wakes_on_time(core))
        bound = self.job_bound
        for jid, facts in enumerate(state.jobs):
            if not facts.outcome and now - facts.submitted > bound:
                broken.append(f"job {jid} has no outcome {now - facts.submitted:g}s after its "
                              f"submission, past its bound of {bound:g}s (job_bound)")
            if (not facts.outcome and facts.cancelled is not None
                    and now - facts.cancelled > cfg.close_timeout):
                broken.append(f"job {jid} has no outcome {now - facts.cancelled:g}s after "
                              f"cancel(), past close_timeout={cfg.close_timeout:g}s")
        # drain() and close() are bounded: a drain by drain_timeout, then
        # closing (from close(), or the drain's end) by a graceful stop, a kill
        # and its reap.
        shutdown = cfg.close_timeout + cfg.kill_timeout
        if state.closed_at is not None and now - state.closed_at > shutdown:
            broken.append(f"the pool is {core.pool_state} {now - state.closed_at:g}s after "
                          f"close() or the drain's end, past close_timeout + kill_timeout = "
                          f"{shutdown:g}s")
        if state.drained_at is not None and now - state.drained_at > cfg.drain_timeout:
            broken.append(f"the pool is {core.pool_state} {now - state.drained_at:g}s after "
                          f"drain(), past drain_timeout={cfg.drain_timeout:g}s")
        limit = self.recycle
        if limit is not None and state.given:
            # Recycling, from the world's own record: a process that was sent
            # max_jobs_per_child jobs and reported (or no longer owes) every
            # one is retired, asked to stop or killed, not kept for another.
            busy = {c for c, _ in state.owed} | {c for c, _ in state.holds}
            for cid, n in state.given.items():
                if (n >= limit and cid in state.alive and cid not in busy
                        and cid not in state.stopped and cid not in state.killed):
                    broken.append(f"child {cid} was sent {n} jobs (max_jobs_per_child={limit}) "
                                  "but was neither asked to stop nor killed: it is not retired")
        for cid, child in children.items():
            if child.deadline is None:
                broken.append(f"child {cid} is {child.state} with no armed deadline")
            if child.job is not None and child.state not in _MAY_HOLD_A_JOB:
                broken.append(f"child {cid} holds job {child.job} while {child.state}")
        held: dict[int, int] = {}
        for jid, job in core.jobs.items():
            if job.deadline is None:
                broken.append(f"job {jid} is {job.state} with no armed deadline")
            if job.state in _ON_A_CHILD:
                owner = children.get(job.child) if job.child is not None else None
                if owner is None or owner.job != jid:
                    broken.append(f"job {jid} is {job.state} on child {job.child}, which does "
                                  "not hold it")
                elif owner.state not in _MAY_HOLD_A_JOB:
                    broken.append(f"job {jid} is {job.state} on child {job.child}, which is "
                                  f"{owner.state}")
                if job.child is not None:
                    if job.child in held:
                        broken.append(f"jobs {held[job.child]} and {jid} are both on child "
                                      f"{job.child}")
                    held[job.child] = jid
        # Every submitted job in exactly one place: live in the core, or settled once.
        for jid, facts in enumerate(state.jobs):
            live = jid in core.jobs
            if live and facts.outcome:
                broken.append(f"job {jid} is settled ({facts.outcome}) but still "
                              f"{core.jobs[jid].state} in the core")
            if not live and not facts.outcome:
                broken.append(f"job {jid} vanished: neither live nor settled")
        queued = [jid for jid, job in core.jobs.items() if job.state == "queued"]
        if sorted(queued) != sorted(core.queue):
            broken.append(f"the queue {core.queue} does not match the queued jobs {queued}")
        pool = core.pool_state
        if pool in _KEEPS_WARM:
            # Restart intensity in the world's own count: more than max_restarts
            # failures within restart_window back the pool off; up to that,
            # the pool keeps num_idle idle children on top of its queued jobs
            # (within max_children), starting new ones at once.
            recent = sum(1 for f in state.fails if f > now - cfg.restart_window)
            if recent > cfg.max_restarts:
                broken.append(f"{recent} failures within restart_window="
                              f"{cfg.restart_window:g}s (max_restarts={cfg.max_restarts}), but "
                              f"the pool is still {pool}")
            else:
                idle = sum(1 for c in children.values() if c.state in _UNCLAIMED)
                want = cfg.num_idle + len(queued)
                if idle < want and len(children) < cfg.max_children:
                    broken.append(f"the pool is {pool} with {idle} idle or warming children "
                                  f"for num_idle={cfg.num_idle} and {len(queued)} queued jobs, "
                                  f"{len(children)} of max_children={cfg.max_children} live, "
                                  f"and {recent} of max_restarts={cfg.max_restarts} failures: "
                                  "it should start more")
        # Availability as reported, honest both ways (README, "Availability"):
        # available iff a job submitted now would be dispatched without
        # waiting on a failing spawn: an idle ready child, or spawning proven
        # since the last failure (the world's own record) and a child warming
        # or room to start one that no queued job has claimed; and the pool
        # neither backing off, draining nor closed.
        ready = any(c.state == "ready" for c in children.values())
        told = state.told
        if pool in _KEEPS_WARM:
            if ready and told is not True:
                broken.append(f"the pool is {pool} with an idle ready child, but it reports "
                              f"{'nothing' if told is None else 'unavailable'}")
            elif not ready:
                warming = sum(1 for c in children.values() if c.state in _WARMING_UP)
                spare = warming + cfg.max_children - len(children) - len(queued)
                could = state.proven and spare > 0
                if could and told is not True:
                    broken.append(f"the pool is {pool}, spawning has worked since the last "
                                  f"failure and {spare} children are unclaimed or could "
                                  "start, but it reports "
                                  f"{'nothing' if told is None else 'unavailable'}")
                elif not could and told is True:
                    why = ("no child has become ready since the last failure"
                           if not state.proven else "every child and free slot is claimed by "
                           "a queued job")
                    broken.append(f"the pool is {pool} with no ready child and {why}, but "
                                  "it reports available")
        elif told is True:
            broken.append(f"the pool is {pool}, but it reports available")
        if queued and ready:
            # Work-conserving: a queued job never waits while a child is idle
            # and ready (a draining pool still runs the jobs it accepted).
            broken.append(f"job {queued[0]} waits in the queue while a ready child is idle "
                          f"(the pool is {pool})")
        if core.pool.deadline is None and core.pool_state != "closed":
            broken.append(f"the pool is {core.pool_state} with no armed deadline")
        if core.pool_state == "closed" and children:
            broken.append(f"the pool is closed but {len(children)} children are live")
        return broken

    def _deadlines_within_bounds(self, core: SupervisorCore) -> list[str]:
        """No job's deadline is further away than its state's duration allows; a
        running job's is its own timeout, as the world submitted it (not the pool's)."""
        broken = []
        now = core.now
        for jid, job in core.jobs.items():
            setting = JOB.state(job.state).timeout
            if setting is None or job.deadline is None:
                continue
            most = self.run_bound if setting == "job_timeout" else self.config.duration(setting)
            if job.deadline - now > most:
                what = ("its own timeout" if setting == "job_timeout" and self.timeout
                        is not None else setting)
                broken.append(f"job {jid} is {job.state} with its deadline "
                              f"{job.deadline - now:g}s away, past {what}={most:g}s")
        return broken

    def quiescent(self, state: World) -> bool:
        core = state.core
        if core.jobs or any(not f.outcome for f in state.jobs):
            return False
        pool = core.pool_state
        if pool == "closed":
            return True
        if pool == "backing_off":
            return core.pool.deadline is not None
        if pool != "running":
            return False
        children = core.children
        return len(children) == self.config.num_idle and all(
            c.state == "ready" for c in children.values())

    def goals(self) -> Sequence[Goal[World]]:
        # Availability as the core reported it (ReportAvailability): what
        # users, metrics and /readyz see, not the core's own field.
        return (Goal(
            "honest_availability",
            when=lambda w: w.told is True,
            reach=lambda w: w.told is not True or any(
                c.state == "ready" for c in w.core.children.values()),
            target="a ready child, or availability turned false",
            doc="While the pool says it is available, a ready child must be reachable, or "
                "the pool must stop saying so.",
        ), Goal(
            "availability_returns",
            when=lambda w: w.told is not True and w.core.pool_state in _KEEPS_SERVING,
            reach=lambda w: w.told is True or w.core.pool_state not in _KEEPS_SERVING,
            target="the pool available again (or no longer serving)",
            doc="A serving pool that says it is unavailable can become available again: "
                "unavailability that never ends is a pool nobody routes to.",
        ), Goal(
            "backoff_ends",
            when=lambda w: w.core.pool_state == "backing_off",
            reach=lambda w: w.core.pool_state == "running",
            target="the pool running again",
            doc="A pool backing off gets back to running once spawns succeed: backing off "
                "is quiescent only while its timer leads to a new attempt.",
        ))

    # --- reports ------------------------------------------------------------------

    def describe(self, state: World) -> str:
        core = state.core
        now = core.now

        def rel(t: float | None) -> str:
            return "no deadline" if t is None else f"deadline +{t - now:g}s"

        status = "available" if core.available else "unavailable"
        lines = [f"t={now:g}  pool {core.pool_state} ({rel(core.pool.deadline)}), {status}"]
        for cid, c in sorted(core.children.items()):
            pid = "no pid yet" if c.pid is None else f"pid {c.pid}"
            held = "" if c.job is None else f", job {c.job}"
            gone = ", process EXITED" if cid in state.dead else ""
            sent = "" if self.recycle is None else f", {state.given.get(cid, 0)} jobs sent"
            lines.append(f"child {cid}: {c.state} ({pid}{held}{sent}, {rel(c.deadline)}{gone})")
        for jid, facts in enumerate(state.jobs):
            job = core.jobs.get(jid)
            if job is not None:
                on = "" if job.child is None else f" on child {job.child}"
                lines.append(f"job {jid}: {job.state}{on} ({rel(job.deadline)})")
            else:
                lines.append(f"job {jid}: {facts.outcome or '?'}")
        return "\n".join(lines)


class WayoutServing(WayoutDesign):
    """The same world with a user who never drains or closes the pool.

    Closing is a way out of everything (it is bounded: stop, kill, abandon), so
    with it "way out" only shows that shutdown works. Without it, every state
    must lead back to service on its own: the pool refilled to its warm target
    (or backing off on a timer) and every job settled. That is the property a
    wedged pool like agents-js #1748 breaks while it still accepts jobs.
    """

    name = "wayout-serving"
    title = "wayout's SupervisorCore, never drained or closed: it must recover by itself"

    def __init__(self, children: int = 2, jobs: int = 3, restarts: int = 1,
                 **kwargs: Any) -> None:
        kwargs.setdefault("drain", False)
        kwargs.setdefault("close", False)
        super().__init__(children, jobs, restarts, **kwargs)


class WayoutStalls(WayoutDesign):
    """The same world with a parent that may stall once: time jumps past every
    deadline while nobody drives the core (its event loop blocked, its process
    stopped). No child or job may be judged by a deadline that waits on a
    child and passed during the stall; every other property still holds."""

    name = "wayout-stalls"
    title = "wayout's SupervisorCore with a parent that stalls: it must blame no child for it"

    def __init__(self, children: int = 2, jobs: int = 1, restarts: int = 1,
                 **kwargs: Any) -> None:
        kwargs.setdefault("stalls", True)
        super().__init__(children, jobs, restarts, **kwargs)


class WayoutRecycle(WayoutServing):
    """wayout-serving's world with recycling on (``max_jobs_per_child``) and children that lie.

    In the world's own count of the jobs sent to each process, none runs more
    than ``max_jobs_per_child``, and one that ran that many is retired (asked
    to stop, or killed) as soon as it owes nothing. And any child that is not
    killed may send a well-formed report (done, raised) on a job it does not
    run (``foreign_reports``): the core must take it as a protocol violation,
    and a job settled by such a report breaks safety.
    """

    name = "wayout-recycle"
    title = ("wayout's SupervisorCore recycling children after max_jobs_per_child jobs, "
             "with children that report on jobs they do not run")

    def __init__(self, children: int = 2, jobs: int = 2, restarts: int = 1, *,
                 max_jobs_per_child: int = 1, idle: int | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("config", model_config(children, idle, restarts,
                                                 max_jobs_per_child=max_jobs_per_child))
        kwargs.setdefault("foreign_reports", True)
        # The user's cancel() is checked by wayout and wayout-serving; here it
        # only multiplies the states (2 jobs: 20,035 with it, 11,036 without).
        # Job timeouts still cancel.
        kwargs.setdefault("cancel", False)
        super().__init__(children, jobs, restarts, **kwargs)


#: A child's and a job's signature (fsm.codec: their own fields, as the
#: records declare them), then what the model adds: the job a child holds,
#: whether its process is dead, the ack it owes, the world's own record of its
#: process (alive, killed, pinged, sent its init, time in its state); a job's place in the queue
#: and on its child, and what the user knows of it.
_SIGN_CHILD = child_signer("held_job", "dead", "owes", "alive", "killed", "pinged", "inited",
                           "clock", "asked", "greets", "runs", "stopped", "cancel", "given")
_SIGN_JOB = job_signer("place", "on_holder", "on_a_child", "facts")
_TRANSITIONED, _SPAWN, _SEND_JOB, _SETTLE = ev.Transitioned, ev.SpawnChild, ev.SendJob, ev.SettleJob
_SUBMIT, _EXITED, _DEADLINE, _ACK = ev.Submit, ev.ChildExited, ev.DeadlineReached, ev.JobAck
_SPAWNED, _PONG, _READY, _INIT_ERROR = ev.Spawned, ev.Pong, ev.Ready, ev.InitError
_PING, _INIT, _KILL = ev.SendPing, ev.SendInit, ev.Kill
_HELLO, _DONE, _RAISED, _CANCEL_ACK = ev.Hello, ev.JobDone, ev.JobRaised, ev.CancelAck
_STOP, _CANCEL, _REPORT = ev.SendStop, ev.SendCancel, ev.ReportAvailability
_BAD = ev.BadMessage
_CANCEL_CALL, _DRAIN_CALL, _CLOSE_CALL = ev.Cancel, ev.Drain, ev.Close


def _pairs_kept(pairs: frozenset[tuple[int, int]], children: Mapping[int, Any],
                dead: frozenset[int]) -> frozenset[tuple[int, int]]:
    """``pairs`` without those whose child the core forgot or whose process is dead
    (the same set, not a copy, when none is: the common case)."""
    for c, _ in pairs:
        if c not in children or c in dead:
            return frozenset(o for o in pairs if o[0] in children and o[0] not in dead)
    return pairs


def _pairs_known(pairs: frozenset[tuple[int, int]], ids: Any) -> bool:
    """Whether every (child, job) of ``pairs`` names a child in ``ids``."""
    for c, _ in pairs:
        if c not in ids:
            return False
    return True


#: No (child, job) pairs, as a mapping (never written to).
_NO_PAIRS: Mapping[int, int] = MappingProxyType({})
#: Build a World, a Step from one tuple of their fields (no keyword handling).
_WORLD_NEW = _STEP_NEW = tuple.__new__


def _sorted(sigs: list[tuple[Any, ...]]) -> tuple[tuple[Any, ...], ...]:
    """Signatures in a canonical order (by value; by text if values do not compare)."""
    if len(sigs) < 2:
        return tuple(sigs)
    try:
        return tuple(sorted(sigs))
    except TypeError:
        return tuple(sorted(sigs, key=repr))


def _latest_deadline(core: SupervisorCore) -> float:
    """The last of the core's armed deadlines (its heartbeat included)."""
    times = [core.now]
    times += [c.deadline for c in core.children.values() if c.deadline is not None]
    times += [j.deadline for j in core.jobs.values() if j.deadline is not None]
    if core.pool.deadline is not None:
        times.append(core.pool.deadline)
    if core.heartbeat_at is not None:
        times.append(core.heartbeat_at)
    return max(times)


def _late_by(core: SupervisorCore, now: float) -> float:
    """How long past its next deadline (or last drive, if later) ``core`` is driven at ``now``."""
    deadline = core.next_deadline()
    if deadline is None:
        return 0.0
    return now - max(deadline, core.now)


def _core_order(core: SupervisorCore, at: float) -> Iterator[tuple[ev.DeadlineKey, ...]]:
    yield ()


def _wakes_on_time(core: SupervisorCore) -> list[str]:
    """The core asks to be woken (``next_deadline()``, the one timer the runtime
    arms) no later than the earliest deadline of its records and heartbeat: a
    deadline it sleeps past fires only when something else wakes the core.
    The world advances time to ``next_deadline()``, as the runtime does, so this
    compares it with the records themselves."""
    earliest: float | None = None
    owner = ""
    for kind, records in (("child", core.children), ("job", core.jobs)):
        for ident, record in records.items():
            d = record.deadline
            if d is not None and (earliest is None or d < earliest):
                earliest, owner = d, f"{kind} {ident}"
    for d, name in ((core.pool.deadline, "the pool"), (core.heartbeat_at, "the heartbeat")):
        if d is not None and (earliest is None or d < earliest):
            earliest, owner = d, name
    wake = core.next_deadline()
    if earliest is None or (wake is not None and wake <= earliest):
        return []
    asked = "never" if wake is None else f"at t={wake:g}"
    return [f"the core asks to be woken {asked}, after {owner}'s deadline at "
            f"t={earliest:g}: it would sleep past it"]


def _label(core: SupervisorCore, e: ev.Event) -> str:
    """A short description of ``e`` for traces."""
    kind = type(e).__name__
    if isinstance(e, ev.DeadlineReached) and _late_by(core, e.now) > core.config.stall_threshold:
        return (f"the parent stalls: nobody drives it from t={core.now:g} to t={e.now:g} "
                f"(+{e.now - core.now:g}s), past all its deadlines")
    if isinstance(e, ev.DeadlineReached):
        first = "" if not e.order else " (first " + ", ".join(
            "the pool" if k == "pool" else f"{k} {i}" for k, i in e.order) + ")"
        return f"time passes to t={e.now:g} (+{e.now - core.now:g}s): deadlines fire{first}"
    if isinstance(e, ev.Submit):
        return f"user submits job {e.job}"
    if isinstance(e, ev.Cancel):
        return f"user cancels job {e.job}"
    if isinstance(e, ev.Drain | ev.Close):
        return f"user calls {kind.lower()}()"
    if isinstance(e, ev.Spawned):
        return f"child {e.child}'s process starts"
    if isinstance(e, ev.ChildExited):
        if e.code is None:
            return f"child {e.child}'s process cannot be started"
        how = {CRASH: "crashes", GRACEFUL: "exits", SIGKILLED: "is reaped after SIGKILL"}
        return f"child {e.child} {how.get(e.code, f'exits with {e.code}')}"
    child = getattr(e, "child", "?")
    job = getattr(e, "job", None)
    return f"child {child} sends {kind}" + ("" if job is None else f" (job {job})")


__all__ = ["JobFacts", "WayoutDesign", "WayoutRecycle", "WayoutServing", "WayoutStalls",
           "World", "model_config"]
