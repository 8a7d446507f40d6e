"""A Kubernetes liveness probe that only checks that the process exists.

A service whose event loop deadlocks (a lock taken twice, a blocking call on
the loop) keeps its process, its PID and its open port: an ``exec`` probe
such as ``pgrep server`` or ``kill -0 1``, or a TCP probe answered by the
kernel's backlog, keeps passing, so the kubelet never restarts the container
and every request waits until the client gives up. The fix probes what
serves the requests: an ``httpGet`` on a handler run by the same event loop,
with a ``timeoutSeconds``; after ``failureThreshold`` failures the kubelet
restarts the container (Kubernetes docs, "Configure Liveness, Readiness and
Startup Probes"; the "liveness probe only checks the process" anti-pattern).

    wayout check --design k8s_liveness.py:LivenessProbe                     # exit 1
    wayout check --design k8s_liveness.py:LivenessProbe --param probe=http  # exit 0
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from models.design import Design, Step

PROBES = ("process", "http")


class Pod(NamedTuple):
    app: str  # "starting" | "serving" | "hung"
    failures: int  # consecutive failed probes
    pending: int  # requests waiting for an answer
    answered: int
    sent: int
    hangs_left: int


class LivenessProbe(Design[Pod]):
    name = "k8s-liveness"
    title = "Kubernetes: a liveness probe that checks only the process misses a hung server"
    source = "kubernetes.io, Configure Liveness, Readiness and Startup Probes"

    def __init__(self, requests: int = 2, hangs: int = 1, probe: str = "process",
                 failure_threshold: int = 2) -> None:
        if probe not in PROBES:
            raise ValueError(f"probe must be one of {', '.join(PROBES)}, not {probe!r}")
        self.requests = requests
        self.hangs = hangs
        self.probe = probe
        self.failure_threshold = failure_threshold

    def parameters(self) -> str:
        return (f"requests={self.requests} hangs={self.hangs} probe={self.probe} "
                f"failure_threshold={self.failure_threshold}")

    def initial(self) -> Pod:
        return Pod("starting", 0, 0, 0, 0, self.hangs)

    def successors(self, s: Pod) -> Iterator[Step[Pod]]:
        if s.sent < self.requests:
            yield Step(f"a client sends request {s.sent}",
                       s._replace(sent=s.sent + 1, pending=s.pending + 1))
        if s.app == "starting":
            yield Step("the server is up", s._replace(app="serving"))
        if s.app == "serving" and s.pending:
            yield Step("the server answers a request",
                       s._replace(pending=s.pending - 1, answered=s.answered + 1))
        if s.app == "serving" and s.hangs_left:
            yield Step("the event loop deadlocks (the process lives on)",
                       s._replace(app="hung", hangs_left=s.hangs_left - 1))
        # periodSeconds passes: the kubelet probes.
        healthy = s.app != "hung" or self.probe == "process"
        if healthy:
            if s.failures:
                yield Step("the liveness probe passes", s._replace(failures=0), time_passed=True)
        elif s.failures + 1 >= self.failure_threshold:
            yield Step("the liveness probe fails: the kubelet restarts the container",
                       s._replace(app="starting", failures=0), time_passed=True, spawns=1)
        else:
            yield Step("the liveness probe times out", s._replace(failures=s.failures + 1),
                       time_passed=True)

    def quiescent(self, s: Pod) -> bool:
        return s.pending == 0 and s.app != "hung"

    def describe(self, s: Pod) -> str:
        return (f"server: {s.app}; probe failures {s.failures}\nrequests pending "
                f"{s.pending}, answered {s.answered}")
