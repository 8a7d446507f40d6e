"""The three lifecycles of wayout: child, job and pool.

These tables are the single definition of each lifecycle. The supervisor core
drives objects through machines built from them, the model checker explores
the core, and the diagrams are drawn from them; nothing else in wayout says
which event leads where.

Each non-final state names the *setting* that bounds it (see
``fsm.config.PoolConfig``) and where its deadline leads. Read a table row as
"in STATE, on EVENT, go to DEST".
"""

from __future__ import annotations

from fsm.spec import LifecycleSpec, State, Transition

#: The event of the parent's own stall (``SupervisorCore`` was driven more than
#: ``PoolConfig.stall_grace`` after its next deadline: its event loop was
#: blocked or its process stopped). A state takes it when its deadline waits
#: for the other side (a child's message, its exit, its reap): such a deadline
#: that passed while the parent was not listening proves nothing about the
#: child, so the stall renews it (a self-loop: the state's full timeout again,
#: counted from the end of the stall) instead of letting it judge. A deadline
#: that is the user's bound on wall time (queue_timeout, job_timeout,
#: drain_timeout) or the pool's own policy (start, back-off, the running tick)
#: takes no stall: it fires as usual.
STALLED = "stalled"


def _renewed_by_a_stall(*states: str) -> list[Transition]:
    """The self-loops that renew ``states``' deadlines after a stall of the parent."""
    return [Transition(STALLED, state, state) for state in states]

# ----------------------------------------------------------------------------
# Child: one OS process.
# ----------------------------------------------------------------------------

_CHILD_STATES = (
    State("spawned", timeout="spawn_timeout", on_timeout="failed",
          doc="process created, waiting for the child's hello", missed="sent no hello"),
    State("warming", timeout="initialize_timeout", on_timeout="failed",
          doc="hello received, the initializer runs, waiting for ready or error",
          missed="did not finish its initializer"),
    # A pong renews the deadline of ready and busy; nothing removes it.
    State("ready", timeout="ping_timeout", on_timeout="failed",
          doc="warm and idle in the pool", missed="answered no ping"),
    State("busy", timeout="ping_timeout", on_timeout="failed",
          doc="running one job (the job's own deadline lives on the job)",
          missed="answered no ping"),
    State("stopping", timeout="close_timeout", on_timeout="failed",
          doc="graceful stop asked (drain, recycle, cancel)", missed="did not stop"),
    # The kill itself is bounded: a process that is not reaped after
    # SIGKILL (uninterruptible sleep) is abandoned, never waited on forever.
    State("failed", timeout="kill_timeout", on_timeout="abandoned",
          doc="SIGKILL sent, waiting for the reap"),
    State("killed", final=True, doc="the process was reaped, whatever the cause"),
    State("abandoned", final=True,
          doc="still not reaped kill_timeout after SIGKILL; slot released, reported"),
)

#: The states in which a child's process may still be running: every state
#: that is not final (a final child was reaped, or given up on).
CHILD_LIVE = tuple(s.name for s in _CHILD_STATES if not s.final)

CHILD = LifecycleSpec(
    name="child",
    doc="One OS process, from its creation to its reap.",
    initial="spawned",
    states=_CHILD_STATES,
    transitions=[
        Transition("hello", "spawned", "warming"),
        Transition("warmed", "warming", "ready"),
        Transition("init_error", "warming", "failed"),
        Transition("dispatch", "ready", "busy"),
        Transition("finish", "busy", "ready"),
        # Evidence of life; the core re-arms the state's deadline.
        Transition("pong", "ready", "ready"),
        Transition("pong", "busy", "busy"),
        Transition("stop", ("ready", "busy"), "stopping"),
        # The supervisor decided to kill: bad message, memory, lost ack, close.
        Transition("kill", ("spawned", "warming", "ready", "busy", "stopping"), "failed"),
        # The process was reaped. From any live state: a child may die at any time.
        Transition("exit", CHILD_LIVE, "killed"),
        # The parent stalled: every live child's deadline waits on the child
        # (hello, ready, a pong, its exit, its reap), and its answer may sit
        # unread in the parent's socket. Ready and busy children are pinged
        # again (fsm.core: a re-probe).
        *_renewed_by_a_stall(*CHILD_LIVE),
    ],
)

# ----------------------------------------------------------------------------
# Job: one call of a user function.
# ----------------------------------------------------------------------------

JOB = LifecycleSpec(
    name="job",
    doc="One submitted call, from the queue to exactly one outcome.",
    initial="queued",
    states=[
        State("queued", timeout="queue_timeout", on_timeout="failed",
              doc="accepted, waiting for a ready child (fails with NoCapacity)"),
        # The child acks before it calls user code, on an ordered stream: a child
        # whose stream ends before its ack provably never started the job, so
        # the job goes back to the queue.
        State("dispatched", timeout="ack_timeout", on_timeout="unacked",
              doc="sent to a child, waiting for its ack"),
        # A missed ack proves nothing yet: the ack may be in flight while the
        # parent was stalled. Requeueing now could run the job twice, so the
        # child is killed and the job waits for the end of its stream: an ack
        # read before the end means the job started (it then fails with
        # ChildDied), no ack means it never did (requeued). The deadline only
        # backs up the child's own kill_timeout, which fires first.
        State("unacked", timeout="kill_timeout", on_timeout="queued",
              doc="no ack in time: its child is killed; requeued when its stream ends"),
        State("running", timeout="job_timeout", on_timeout="cancelling",
              doc="acked: user code runs in the child"),
        State("cancelling", timeout="close_timeout", on_timeout="cancelled",
              doc="cancel sent to the child; on timeout the child is killed"),
        State("done", final=True, doc="the function returned a value"),
        State("failed", final=True,
              doc="raised, its child died, no capacity, or the pool closed"),
        State("cancelled", final=True, doc="cancelled by the caller or by its timeout"),
    ],
    transitions=[
        Transition("dispatch", "queued", "dispatched"),
        Transition("requeue", ("dispatched", "unacked"), "queued"),
        Transition("ack", ("dispatched", "unacked"), "running"),
        Transition("finish", ("running", "cancelling"), "done"),
        Transition("error", ("running", "cancelling"), "failed"),
        Transition("child_died", "running", "failed"),
        Transition("child_died", "cancelling", "cancelled"),
        Transition("cancel", "queued", "cancelled"),
        Transition("cancel", ("dispatched", "unacked", "running"), "cancelling"),
        Transition("cancelled", "cancelling", "cancelled"),
        # The pool is closing: settle whatever is not final yet.
        Transition("abort", ("queued", "dispatched", "unacked", "running"), "failed"),
        Transition("abort", "cancelling", "cancelled"),
        # The parent stalled: these wait on the child (its ack, the end of its
        # stream, its cancel ack), which may sit unread. queued and running
        # are the user's bounds on wall time and take no stall.
        *_renewed_by_a_stall("dispatched", "unacked", "cancelling"),
    ],
)

# ----------------------------------------------------------------------------
# Pool: the supervisor as a whole.
# ----------------------------------------------------------------------------

POOL = LifecycleSpec(
    name="pool",
    doc="The supervisor: warm-up, service, back-off, drain and close.",
    initial="starting",
    states=[
        # Past start_timeout the pool runs anyway (unavailable if nothing is
        # warm): entering a Pool never hangs.
        State("starting", timeout="start_timeout", on_timeout="running",
              doc="spawning the first num_idle children"),
        # A steady state still has a deadline: every ping_interval the core
        # reconciles the pool with its warm target (the refill that #1748 lost).
        State("running", timeout="ping_interval", on_timeout="running",
              doc="serving jobs and keeping num_idle children warm"),
        State("backing_off", timeout="backoff_delay", on_timeout="running",
              doc="restart intensity exceeded: no spawns, unavailable, delay grows"),
        State("draining", timeout="drain_timeout", on_timeout="closing",
              doc="no new jobs; accepted jobs finish"),
        State("closing", timeout="shutdown_timeout", on_timeout="closed",
              doc="every child stopped, then killed; every job settled"),
        State("closed", final=True, doc="nothing left running"),
    ],
    transitions=[
        Transition("warm", "starting", "running"),
        Transition("back_off", ("starting", "running"), "backing_off"),
        Transition("drain", ("starting", "running", "backing_off"), "draining"),
        Transition("drained", "draining", "closing"),
        Transition("close", ("starting", "running", "backing_off", "draining"), "closing"),
        Transition("closed", "closing", "closed"),
        # The parent stalled: closing's deadline backs up its children's
        # (stop, then kill), which a stall renews; it must not end first, or
        # the pool would close with live children.
        *_renewed_by_a_stall("closing"),
    ],
)

ALL: tuple[LifecycleSpec, ...] = (CHILD, JOB, POOL)
