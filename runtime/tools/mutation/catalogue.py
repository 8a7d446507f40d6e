"""The catalogue of single faults seeded into the core and the lifecycle tables.

Each mutant is data: the file, the scope in it (``Class.method``, a function,
or a module-level name such as ``JOB``), an exact text ``anchor`` that must
occur once in that scope, its ``replacement`` (continuation lines are
indented like the anchor's line), a description of the fault as a reviewer
would seed it, and its class. ``equivalent`` is empty for a real fault: one
that production would suffer, so ``wayout check`` must catch it. It is a
reason only for a mutant that no correct checker could tell from the
original (the behaviour is the same in every world); such a mutant must
survive, and a survivor without a reason is a gap in the checker
(/work/coord/MUTANTS.md lists them while they last).

``origin`` says where a fault comes from: "issue" for the examples issue 14
names, "issue-class" for the kinds it lists, "reviewer" for faults a
reviewer would plausibly seed beyond the issue's text.

When the core is refactored an anchor may stop matching: ``wayout mutants``
then refuses to run and names the mutant (``tests/test_mutants.py`` checks
that every anchor still applies). Update the anchor to the new code, keeping
the fault it seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

CORE = "fsm/core.py"
TABLES = "fsm/lifecycles.py"

#: The classes of fault, in the order reports list them.
CLASSES = (
    "dropped command",
    "skipped requeue",
    "deadline",
    "wrong duration",
    "restart intensity",
    "availability",
    "dispatch guard",
    "message guard",
    "double settlement",
    "tie order",
    "table edge",
    "warm target",
    "drain and close",
)


@dataclass(frozen=True)
class Mutant:
    id: str
    klass: str
    file: str
    scope: str
    anchor: str
    replacement: str
    description: str
    #: Why no checker could tell it from the original; empty for a real fault.
    equivalent: str = ""
    origin: str = "issue-class"


def _core(id: str, klass: str, scope: str, anchor: str, replacement: str, description: str,
          *, equivalent: str = "", origin: str = "issue-class") -> Mutant:
    return Mutant(id, klass, CORE, scope, anchor, replacement, description, equivalent, origin)


def _table(id: str, scope: str, anchor: str, replacement: str, description: str,
           *, equivalent: str = "", origin: str = "issue-class") -> Mutant:
    return Mutant(id, "table edge", TABLES, scope, anchor, replacement, description, equivalent,
                  origin)


_C = "SupervisorCore."

CATALOGUE: tuple[Mutant, ...] = (
    # --- dropped commands ------------------------------------------------------
    _core("no-kill", "dropped command", _C + "_kill",
          "self._out.append(ev.Kill(child.ident, child.reason, cause=cause))", "pass",
          "no kill is ever sent: every child the core decides to kill lives on"),
    _core("init-timeout-no-kill", "dropped command", _C + "_child_timeout",
          "what = CHILD.state(state).missed",
          'if state == "warming":\n'
          '    self._record_failure(child)\n'
          '    self._fire(child, "timeout")\n'
          '    return\n'
          'what = CHILD.state(state).missed',
          "an initializer that times out marks its child failed without a Kill: the hung "
          "initializer lives on", origin="issue"),
    _core("no-ping", "dropped command", _C + "_heartbeat",
          "self._out.append(ev.SendPing(child.ident))", "pass",
          "the heartbeat sends no ping: every healthy child is killed at ping_timeout"),
    _core("no-send-job", "dropped command", _C + "_reconcile",
          "self._out.append(ev.SendJob(child.ident, job.ident))", "pass",
          "a dispatched job is never sent to its child: no job ever runs"),
    _core("no-send-init", "dropped command", _C + "_on_hello",
          "self._out.append(ev.SendInit(child.ident))", "pass",
          "a child's hello is not answered with its init: no child ever warms"),
    _core("no-spawn-command", "dropped command", _C + "_spawn",
          "self._out.append(ev.SpawnChild(child.ident))", "pass",
          "the core records a new child but never asks for its process"),
    _core("no-send-cancel", "dropped command", _C + "_begin_cancel",
          "self._out.append(ev.SendCancel(child.ident, job.ident))", "pass",
          "a cancel is never sent to the busy child: every cancellation waits for "
          "close_timeout and kills the child"),
    _core("no-stop-on-close", "dropped command", _C + "_enter_closing",
          "self._out.append(ev.SendStop(child.ident) if busy_job is None\n"
          "                                 else ev.SendCancel(child.ident, busy_job))",
          "pass",
          "closing stops no child: each is killed at close_timeout instead of exiting"),
    _core("no-settle-cancelled-queued", "dropped command", _C + "_on_cancel",
          '''self._settle(job.ident, "cancelled", errors.JobCancelled,
                         f"job {job.ident} was cancelled before it started")''', "pass",
          "a queued job cancelled by the user is forgotten without an outcome"),
    _core("no-availability-report", "dropped command", _C + "_reconcile",
          "self._out.append(ev.ReportAvailability(available, reason))", "pass",
          "availability changes are never reported to the runtime (health, metrics)",
          origin="reviewer"),

    # --- skipped requeues ----------------------------------------------------------
    _core("unstarted-fails", "skipped requeue", _C + "_release_job",
          'if job.state in _UNSTARTED:', 'if False:',
          "a job whose child died before its ack fails with ChildDied instead of going "
          "back to the queue"),
    _core("requeue-not-queued", "skipped requeue", _C + "_requeue",
          "self.queue.appendleft(job.ident)", "pass",
          "a requeued job is queued in its lifecycle but never put back in the queue"),
    _core("unacked-timeout-no-requeue", "skipped requeue", _C + "_job_timeout",
          'self._fire(job, "timeout")  # -> queued\n'
          '            self._requeue(job)',
          'self._fire(job, "timeout")  # -> queued',
          "an unacked job whose child is never reaped is marked queued but not requeued "
          "(the branch runs when the job's deadline fires first at a tie with its child's "
          "kill_timeout: the tie orders show it)"),
    _core("spent-budget-kept", "skipped requeue", _C + "_requeue",
          "if job.deadline is not None and job.deadline <= self.now:", "if False:",
          "a requeued job whose queue budget is spent is queued again instead of failing: "
          "a job whose children keep dying is not bounded by queue_timeout"),
    _core("ack-timeout-requeues", "skipped requeue", _C + "_job_timeout",
          'if child is not None and child.state in _KILLABLE:\n'
          '                self._kill(child, f"sent no ack for job {job.ident} within "',
          'if child is not None and child.state in _KILLABLE:\n'
          '    child.job = None\n'
          '    job.child = None\n'
          '    self._fire(job, "timeout")\n'
          '    self.queue.appendleft(job.ident)\n'
          '    self._kill(child, f"sent no ack for job {job.ident} within "',
          "a missed ack requeues the job at once (the ack may be in flight): it can run twice"),
    _core("requeue-at-tail", "skipped requeue", _C + "_requeue",
          "self.queue.appendleft(job.ident)", "self.queue.append(job.ident)",
          "a job that never started is requeued behind the others instead of at the head",
          equivalent="the queue's order is policy, not safety: every queued job keeps its own "
          "queue budget from its submission, so every order settles every job within the same "
          "bound, and no job can be dispatched twice or lost either way",
          origin="reviewer"),

    # --- deadlines: not armed, or renewed on the wrong event -------------------
    _core("pong-renews-job", "deadline", _C + "_on_pong",
          'self._fire(child, "pong")  # re-arms the ping_timeout deadline',
          'self._fire(child, "pong")\n'
          'held = self.jobs.get(child.job) if child.job is not None else None\n'
          'if held is not None and held.state == "running":\n'
          '    self._arm(held)',
          "a pong from a busy child also renews its running job's job_timeout: a job that "
          "answers pings runs forever", origin="issue"),
    _core("pong-no-renew", "deadline", _C + "_on_pong",
          'self._fire(child, "pong")  # re-arms the ping_timeout deadline',
          'kept = child.deadline\n'
          'self._fire(child, "pong")\n'
          'child.deadline = kept',
          "a pong does not renew the child's ping deadline: healthy children are killed "
          "every ping_timeout"),
    _core("queue-budget-restarts", "deadline", _C + "_arm",
          "obj.deadline = obj.submitted + self.config.queue_timeout",
          "obj.deadline = self.now + self.config.queue_timeout",
          "a requeued job's queue budget starts over: a job whose children keep dying "
          "waits forever"),
    _core("job-timeout-global", "deadline", _C + "_arm",
          "obj.deadline = self.now + obj.timeout",
          "obj.deadline = self.now + self.config.job_timeout",
          "a job's own timeout (submit(timeout=...)) is ignored for the pool's job_timeout",
          origin="reviewer"),
    _core("stall-blames-children", "deadline", _C + "handle",
          "self._parent_stalled(last, stalled_since)", "pass",
          "the stall check removed: a core driven long after its deadlines (its event loop "
          "blocked, its process stopped) judges them, and kills every healthy child whose "
          "pong sits unread (issue 15 item 1)", origin="issue"),
    _core("no-heartbeat-rearm", "deadline", _C + "_heartbeat",
          "self.heartbeat_at = self.now + cfg.ping_interval", "self.heartbeat_at = None",
          "the heartbeat is not re-armed after it fires: one round of pings, then none"),
    _core("no-heartbeat-at-start", "deadline", _C + "_on_start",
          "self.heartbeat_at = self.now + self.config.ping_interval", "pass",
          "a started pool never arms its heartbeat: nothing is ever pinged",
          origin="reviewer"),
    _core("heartbeat-skips-busy", "deadline", _C + "_heartbeat",
          "if child.state in _PINGED:", 'if child.state == "ready":',
          "busy children are not pinged: every job longer than ping_timeout kills its child",
          origin="reviewer"),

    # --- wrong durations -----------------------------------------------------------
    _table("unacked-uses-ack-timeout", "JOB",
           'State("unacked", timeout="kill_timeout"', 'State("unacked", timeout="ack_timeout"',
           "the unacked deadline uses ack_timeout instead of kill_timeout: with ack_timeout < "
           "kill_timeout the job is requeued while its child may still ack it (runs twice)",
           origin="issue"),
    _table("spawned-uses-initialize-timeout", "_CHILD_STATES",
           'State("spawned", timeout="spawn_timeout"',
           'State("spawned", timeout="initialize_timeout"',
           "a spawned child waits initialize_timeout for its hello instead of spawn_timeout",
           origin="reviewer"),
    _table("failed-uses-close-timeout", "_CHILD_STATES",
           'State("failed", timeout="kill_timeout"', 'State("failed", timeout="close_timeout"',
           "a killed child is abandoned after close_timeout instead of kill_timeout",
           origin="reviewer"),
    _table("cancelling-uses-job-timeout", "JOB",
           'State("cancelling", timeout="close_timeout"',
           'State("cancelling", timeout="job_timeout"',
           "a cancelling job waits job_timeout (minutes) for its child instead of "
           "close_timeout", origin="reviewer"),
    _core("backoff-no-doubling", "wrong duration", _C + "_backoff_delay",
          "return float(min(cfg.backoff_initial * 2 ** (level - 1), cfg.backoff_max))",
          "return float(cfg.backoff_initial)",
          "the back-off delay never grows: a pool that keeps failing retries every "
          "backoff_initial, without limit", origin="reviewer"),

    # --- restart intensity -----------------------------------------------------
    _core("intensity-off-by-one", "restart intensity", _C + "_reconcile",
          "if len(self.failures) > cfg.max_restarts and pool.state in _KEEPS_WARM:",
          "if len(self.failures) >= cfg.max_restarts and pool.state in _KEEPS_WARM:",
          "the pool backs off after max_restarts failures, not after more than max_restarts"),
    _core("spawn-guard-off-by-one", "restart intensity", _C + "_reconcile",
          "if target and len(self.failures) <= cfg.max_restarts:",
          "if target and len(self.failures) < cfg.max_restarts:",
          "spawning stops at max_restarts failures without backing off: the pool stays "
          "short until the failures leave the window"),
    _core("failures-trimmed-short", "restart intensity", _C + "_record_failure",
          "if len(self.failures) > self.config.max_restarts + 1:",
          "if len(self.failures) > self.config.max_restarts:",
          "only max_restarts failure times are kept: the intensity test can never exceed "
          "max_restarts, and the pool never backs off"),
    _core("crash-not-counted", "restart intensity", _C + "_on_child_exited",
          '''child.reason = f"{how} while {was}"
            self._record_failure(child)''',
          '''child.reason = f"{how} while {was}"
child.settled = True''',
          "an unexpected exit is not counted as a failure: a crashing child is respawned "
          "without limit"),
    _core("backoff-keeps-failures", "restart intensity", _C + "_pool_timeout",
          "self.failures.clear()", "pass",
          "the back-off timer does not forget the failures: the pool backs off again at once, "
          "without trying a spawn, until they leave the window"),
    _core("backoff-level-kept", "restart intensity", _C + "_on_ready",
          "self.backoff_level = 0", "pass",
          "a child that becomes ready does not reset the back-off: the next back-off "
          "is as long as the last", origin="reviewer"),

    # --- availability ------------------------------------------------------------
    _core("proven-after-failure", "availability", _C + "_record_failure",
          "self.spawn_proven = False", "pass",
          "a failure does not clear spawn_proven: the pool says it is available on the "
          "strength of a spawn that no longer works"),
    _core("available-backing-off", "availability", _C + "_availability",
          'if state == "backing_off":', 'if False:',
          "a pool backing off says it is available",
          equivalent="the verdict never changes: the next test (the pool is not in a state "
          "that keeps children warm: starting or running) answers False for backing_off too; "
          "only the reason text differs (\"the pool is backing_off\" instead of the failures "
          "and the last one), which no decision reads"),
    _core("unavailable-with-ready", "availability", _C + "_availability",
          'return True, "a ready child is idle"', 'return False, "a ready child is idle"',
          "a pool with an idle ready child says it is unavailable"),
    _core("available-when-closed", "availability", _C + "_availability",
          'if state not in _KEEPS_WARM:\n'
          '            return False, f"the pool is {state}"',
          'pass',
          "a draining, closing or closed pool says it is available"),
    _core("available-over-capacity", "availability", _C + "_availability",
          "if warming + room > len(self.queue):", "if warming + room >= len(self.queue):",
          "a pool whose every future child is already claimed by a queued job says it is "
          "available", origin="reviewer"),

    # --- dispatch guards -----------------------------------------------------------
    _core("no-dispatch-draining", "dispatch guard", "_DISPATCHING",
          '_ACCEPTING | POOL.sources("drained")', "_ACCEPTING",
          "a draining pool does not dispatch the jobs it accepted: they wait out their "
          "queue_timeout and fail NoCapacity"),
    _core("dispatch-any-pool-state", "dispatch guard", _C + "_reconcile",
          "if self.queue and pool.state in _DISPATCHING:", "if self.queue:",
          "dispatch ignores the pool's state",
          equivalent="the queue is empty in every state outside _DISPATCHING: entering "
          "closing clears it and a closing or closed pool refuses every submission, so the "
          "guard never decides anything"),
    _core("dispatch-newest", "dispatch guard", _C + "_reconcile",
          "job = self.jobs[self.queue.popleft()]", "job = self.jobs[self.queue.pop()]",
          "dispatch takes the newest queued job instead of the oldest",
          equivalent="the queue's order is policy, not safety: each queued job keeps its own "
          "budget from its submission, so every order settles every job within the same bound",
          origin="reviewer"),
    _core("dispatch-double-booked", "dispatch guard", _C + "_reconcile",
          'if child.state == "ready":\n'
          '                    job = self.jobs[self.queue.popleft()]',
          'if child.state in ("ready", "busy"):\n'
          '    job = self.jobs[self.queue.popleft()]\n'
          '    if child.state == "busy":\n'
          '        child.job = job.ident\n'
          '        job.child = child.ident\n'
          '        self._fire(job, "dispatch")\n'
          '        self._out.append(ev.SendJob(child.ident, job.ident))\n'
          '        if not self.queue:\n'
          '            break\n'
          '        continue',
          "a busy child is handed a second job"),

    # --- message guards ----------------------------------------------------------
    _core("late-ack-refused", "message guard", _C + "_on_job_ack",
          'job = self._job_for(e, "ack", ("dispatched", "unacked"))',
          'job = self._job_for(e, "ack", ("dispatched",))',
          "an ack that arrives after the ack timeout is ignored: the job started, is requeued "
          "when its child ends, and runs twice"),
    _core("cancel-dispatched-ignored", "message guard", _C + "_on_cancel",
          'if job is None or job.state == "cancelling":',
          'if job is None or job.state in ("cancelling", "dispatched", "unacked"):',
          "a cancel of a job on its way to a child is dropped: the job runs to its end",
          origin="reviewer"),
    _core("result-from-stale-child", "message guard", _C + "_job_for",
          "if job is not None and job.child == child.ident:",
          "if job is not None:",
          "a job report is accepted from any child, not only from the one holding the job",
          origin="reviewer"),
    _core("pong-any-state", "message guard", _C + "_on_pong",
          "if child is not None and child.state in _PINGED:",
          "if child is not None and child.state in _KILLABLE:",
          "a pong is taken in any live state (a ping that crossed a stop): the core raises",
          origin="reviewer"),

    # --- double settlement ---------------------------------------------------------
    _core("cancel-ack-settles-twice", "double settlement", _C + "_on_cancel_ack",
          'self._settle_cancelled(job, "")',
          'self._settle_cancelled(job, "")\n'
          'self._settle_cancelled(job, "; again")',
          "a cancel ack settles the job twice"),
    _core("cancel-timeout-keeps-job", "double settlement", _C + "_job_timeout",
          '''self._settle_cancelled(job, "; its child was killed")
            self._detach(job)''',
          '''self._settle_cancelled(job, "; its child was killed")''',
          "a cancel that times out settles the job but keeps it on its child: the child's "
          "end settles it again"),
    _core("done-then-died", "double settlement", _C + "_finish_job",
          "self._detach(job)", "del self.jobs[job.ident]",
          "a finished job is forgotten but its child still holds it: the child returns to "
          "ready holding a settled job", origin="reviewer"),

    # --- tie orders ------------------------------------------------------------------
    _core("pool-before-children", "tie order", "_TIE_ORDER",
          '("child", "job", "pool")', '("pool", "job", "child")',
          "deadlines due at the same instant fire pool first, then jobs, then children",
          equivalent="wayout check fires deadlines due at one instant in every order that "
          "can differ in effect (models/ties.py), so this order is one it explores anyway"),
    _core("jobs-before-children", "tie order", "_TIE_ORDER",
          '("child", "job", "pool")', '("job", "child", "pool")',
          "deadlines due at the same instant fire jobs before children",
          equivalent="wayout check fires deadlines due at one instant in every order that "
          "can differ in effect (models/ties.py), so this order is one it explores anyway"),
    _core("deadlines-one-per-event", "tie order", _C + "_on_deadline",
          "                self._timeout(due)\n",
          "                self._timeout(due)\n                break\n",
          "one DeadlineReached fires only the earliest due deadline, not every due one",
          origin="reviewer"),

    # --- table edges -----------------------------------------------------------------
    _table("backoff-reenters-backoff", "POOL",
           'State("backing_off", timeout="backoff_delay", on_timeout="running"',
           'State("backing_off", timeout="backoff_delay", on_timeout="backing_off"',
           "the back-off timer re-enters backing_off: the pool never serves again",
           origin="issue"),
    _table("finish-to-stopping", "CHILD",
           'Transition("finish", "busy", "ready")', 'Transition("finish", "busy", "stopping")',
           "a child that finishes a job is stopping (without being told): it is killed at "
           "close_timeout"),
    _table("requeue-not-from-unacked", "JOB",
           'Transition("requeue", ("dispatched", "unacked"), "queued")',
           'Transition("requeue", "dispatched", "queued")',
           "an unacked job is not requeued when its child ends (it fails with ChildDied)"),
    _table("close-not-from-draining", "POOL",
           'Transition("close", ("starting", "running", "backing_off", "draining"), "closing")',
           'Transition("close", ("starting", "running", "backing_off"), "closing")',
           "close() during a drain is ignored: the pool closes only when the drain ends",
           origin="reviewer"),
    _table("drain-to-closing", "POOL",
           'Transition("drain", ("starting", "running", "backing_off"), "draining")',
           'Transition("drain", ("starting", "running", "backing_off"), "closing")',
           "drain() goes straight to closing, without settling jobs or stopping children"),
    _table("died-cancelling-fails", "JOB",
           'Transition("child_died", "cancelling", "cancelled")',
           'Transition("child_died", "cancelling", "failed")',
           "a job being cancelled whose child dies fails with ChildDied instead of being "
           "cancelled", origin="reviewer"),
    _table("stopping-timeout-killed", "_CHILD_STATES",
           'State("stopping", timeout="close_timeout", on_timeout="failed"',
           'State("stopping", timeout="close_timeout", on_timeout="killed"',
           "a child that does not stop in time is taken as reaped, without a kill"),
    _table("running-timeout-fails", "JOB",
           'State("running", timeout="job_timeout", on_timeout="cancelling"',
           'State("running", timeout="job_timeout", on_timeout="failed"',
           "a job past its job_timeout is failed at once while its child still runs it"),
    _table("pong-not-busy", "CHILD",
           'Transition("pong", "busy", "busy"),', "",
           "a busy child's pong is not taken: every job longer than ping_timeout kills its "
           "child", origin="reviewer"),

    # --- warm target ---------------------------------------------------------------
    _core("target-ignores-queue", "warm target", _C + "_reconcile",
          "target = cfg.num_idle + len(self.queue)", "target = cfg.num_idle",
          "queued jobs do not raise the spawn target: jobs wait for one child at a time",
          origin="reviewer"),
    _core("busy-counts-as-supply", "warm target", "_SUPPLY",
          '_WARMING | {"ready"}', '_WARMING | {"ready", "busy"}',
          "busy children count toward the warm target: a busy pool keeps no idle child",
          origin="reviewer"),
    _core("room-off-by-one", "warm target", _C + "_reconcile",
          "room = cfg.max_children - len(self.children)",
          "room = cfg.max_children - len(self.children) + 1",
          "one child more than max_children may be spawned", origin="reviewer"),
    _core("recycle-never", "warm target", _C + "_finish_job",
          "child.jobs_done += 1", "pass",
          "jobs done are not counted: max_jobs_per_child never recycles a child",
          origin="reviewer"),

    # --- more a reviewer would seed --------------------------------------------------
    _core("exit-keeps-job", "skipped requeue", _C + "_on_child_exited",
          "self._release_job(child)", "pass",
          "a child's exit leaves its job on it: the job is neither requeued nor settled",
          origin="reviewer"),
    _core("abandon-keeps-job", "skipped requeue", _C + "_child_timeout",
          "self._release_job(child)", "pass",
          "an abandoned child's job is not released: it waits for its own deadline",
          origin="reviewer"),
    _core("kills-not-counted", "restart intensity", _C + "_kill",
          "if failure:", "if False:",
          "a child killed for a missed deadline, a bad message or memory does not count "
          "toward restart intensity: a pool of hanging children never backs off",
          origin="reviewer"),
    _core("draining-accepts", "drain and close", _C + "_on_submit",
          "if self.pool.state not in _ACCEPTING:",
          'if self.pool.state not in _ACCEPTING | {"draining"}:',
          "a draining pool still accepts new jobs", origin="reviewer"),
    _core("wake-ignores-jobs", "deadline", _C + "next_deadline",
          "best = heap[0][0] if heap else None",
          "best = min((entry[0] for entry in heap\n"
          "            if entry[1] != _GROUP[\"job\"] and self._armed(entry) is not None),\n"
          "           default=None)",
          "next_deadline() leaves out the jobs' deadlines: a job's timeout fires only when "
          "something else wakes the core", origin="reviewer"),
    _core("wake-ignores-heartbeat", "deadline", _C + "next_deadline",
          "if hb is not None and (best is None or hb < best):", "if False:",
          "next_deadline() leaves out the heartbeat: pings go out only when something else "
          "wakes the core", origin="reviewer"),
    _core("deadline-strict", "deadline", _C + "_on_deadline",
          "if not heap or heap[0][0] > now:", "if not heap or heap[0][0] >= now:",
          "a deadline due exactly now does not fire: a wake-up at the deadline does nothing",
          origin="reviewer"),
    _core("ready-not-proven", "availability", _C + "_on_ready",
          "self.spawn_proven = True", "pass",
          "a child that becomes ready does not prove spawning works: a pool that can serve "
          "by warming a child says it is unavailable", origin="reviewer"),
    _core("recycle-off-by-one", "warm target", _C + "_finish_job",
          "if limit is not None and child.jobs_done >= limit:",
          "if limit is not None and child.jobs_done > limit:",
          "a child is recycled after max_jobs_per_child + 1 jobs", origin="reviewer"),
    _core("ack-crossing-cancel-kills", "message guard", _C + "_job_for",
          'if job.state == "cancelling":\n'
          '                return None  # a report that crossed our cancel',
          "pass",
          "a report that crossed the parent's cancel is taken as a protocol violation: a "
          "healthy child is killed for a race", origin="reviewer"),
    _table("ready-timeout-stays-ready", "_CHILD_STATES",
           'State("ready", timeout="ping_timeout", on_timeout="failed"',
           'State("ready", timeout="ping_timeout", on_timeout="ready"',
           "a ready child that answers no ping is killed but stays ready: it is given jobs",
           origin="reviewer"),

    # --- drain and close -----------------------------------------------------------
    _core("drained-with-running-jobs", "drain and close", _C + "_reconcile",
          'elif pool.state == "draining" and not self.jobs:',
          'elif pool.state == "draining" and not self.queue:',
          "a drain ends when the queue is empty, aborting the jobs still running",
          origin="reviewer"),
    _core("closing-keeps-warming", "drain and close", _C + "_enter_closing",
          "elif child.state in _WARMING:", "elif False:",
          "closing leaves warming children alone: they live until their own deadline",
          origin="reviewer"),
    _core("drain-timeout-no-close", "drain and close", _C + "_pool_timeout",
          '''f"{len(self.jobs)} jobs unfinished; closing")
            self._enter_closing()''',
          '''f"{len(self.jobs)} jobs unfinished; closing")''',
          "a drain that times out enters closing without settling its jobs or stopping "
          "its children"),
)


def by_id(ident: str) -> Mutant:
    for m in CATALOGUE:
        if m.id == ident:
            return m
    raise KeyError(ident)
