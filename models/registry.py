"""Every model the checker knows, by name: wayout's design and the bug zoo.

A further design is one new module with a ``Design`` subclass and one line
here. ``build(name, children=..., jobs=..., restarts=...)`` makes an instance;
bounds a model does not take are ignored (the zoo models are small by nature).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fsm.errors import WayoutError
from models.design import Design
from models.wayout import WayoutDesign, WayoutRecycle, WayoutServing, WayoutStalls
from models.zoo.z1_agents_js_1748 import AgentsJs1748, AgentsJs1768
from models.zoo.z2_agents_js_sigterm import AgentsJsSigterm
from models.zoo.z3_dead_idle_process import DeadIdleProcess, DeadIdleProcessPy
from models.zoo.z4_livekit_5868 import LiveKit5868
from models.zoo.z5_hot_respawn import HotRespawn
from models.zoo.z6_supervisord_stopping import SupervisordStopping
from models.zoo.z7_gunicorn_boot import GunicornBoot

#: wayout's default bounds: fully explored well within `wayout check`'s budget.
DEFAULT_CHILDREN = 2
DEFAULT_JOBS = 3
DEFAULT_RESTARTS = 1


class UnknownModel(WayoutError):
    """No model has that name."""


@dataclass(frozen=True)
class Bounds:
    children: int | None = None
    jobs: int | None = None
    restarts: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    #: "Z1".."Z7" for the bug zoo, "" for wayout's own design.
    zoo: str
    factory: Callable[[Bounds], Design[Any]]
    #: Which bounds the model takes.
    takes: tuple[str, ...] = ()

    def build(self, bounds: Bounds | None = None) -> Design[Any]:
        return self.factory(bounds or Bounds())

    @property
    def design(self) -> Design[Any]:
        """An instance with default bounds (for names, titles, expectations)."""
        return self.build()


#: The stalling parent's default jobs: a stall about triples the states, and one
#: job keeps `wayout check`'s wall time (2 children, 2 jobs: 113,776 states, 364 s loaded).
STALL_JOBS = 1


#: The recycling model's default jobs (max_jobs_per_child=1, lying children):
#: two, so that a retired child's slot serves a second job (models/README.md).
RECYCLE_JOBS = 2


def _wayout(cls: type[WayoutDesign], jobs: int = DEFAULT_JOBS) -> Callable[[Bounds], Design[Any]]:
    return lambda b: cls(
        children=DEFAULT_CHILDREN if b.children is None else b.children,
        jobs=jobs if b.jobs is None else b.jobs,
        restarts=DEFAULT_RESTARTS if b.restarts is None else b.restarts,
    )


#: The orderings models' bounds: one child, one job (models/README.md, "Durations as orderings").
ORDERINGS_CHILDREN = 1
ORDERINGS_JOBS = 1


def _orderings(cls: type[WayoutDesign], name: str) -> Callable[[Bounds], Design[Any]]:
    def build(b: Bounds) -> Design[Any]:
        from models.orderings import orderings_model

        # Fixed bounds, whatever --children/--jobs say: every ordering is a
        # whole state space, and the argument for these bounds is in the README.
        # At these bounds the world can afford stale pongs (a ping crossing
        # a stop), which the default models reduce away.
        return orderings_model(
            cls, ORDERINGS_CHILDREN, ORDERINGS_JOBS, DEFAULT_RESTARTS, name,
            f"{cls.title}, under a covering set of orderings of its durations",
            ties="reduced", stale_pongs=True)
    return build


#: The tie-order models' bounds (models/README.md, "Deadlines due at the same instant").
TIES_CHILDREN = 2
TIES_JOBS = {"wayout-ties": 1, "wayout-serving-ties": 2}


def _ties(cls: type[WayoutDesign], name: str) -> Callable[[Bounds], Design[Any]]:
    def build(b: Bounds) -> Design[Any]:
        # --children/--jobs may only make them smaller (they are the costly ones).
        children = TIES_CHILDREN if b.children is None else min(b.children, TIES_CHILDREN)
        jobs = TIES_JOBS[name] if b.jobs is None else min(b.jobs, TIES_JOBS[name])
        design = cls(children, jobs, DEFAULT_RESTARTS, ties="reduced")
        design.name = name
        design.title = f"{cls.title}, deadlines of one instant in every order"
        return design
    return build


def _jobs(cls: Callable[..., Design[Any]], default: int = 1) -> Callable[[Bounds], Design[Any]]:
    return lambda b: cls(jobs=default if b.jobs is None else b.jobs)


MODELS: tuple[ModelEntry, ...] = (
    ModelEntry("wayout", "", _wayout(WayoutDesign), ("children", "jobs", "restarts")),
    ModelEntry("wayout-serving", "", _wayout(WayoutServing), ("children", "jobs", "restarts")),
    ModelEntry("wayout-stalls", "", _wayout(WayoutStalls, STALL_JOBS),
               ("children", "jobs", "restarts")),
    ModelEntry("wayout-recycle", "", _wayout(WayoutRecycle, RECYCLE_JOBS),
               ("children", "jobs", "restarts")),
    ModelEntry("wayout-orderings", "", _orderings(WayoutDesign, "wayout-orderings")),
    ModelEntry("wayout-serving-orderings", "",
               _orderings(WayoutServing, "wayout-serving-orderings")),
    ModelEntry("wayout-serving-ties", "", _ties(WayoutServing, "wayout-serving-ties")),
    ModelEntry("wayout-ties", "", _ties(WayoutDesign, "wayout-ties")),
    ModelEntry("z1-agents-js-1748", "Z1", _jobs(AgentsJs1748), ("jobs",)),
    ModelEntry("z1-fixed-agents-js-1768", "Z1 fix", _jobs(AgentsJs1768), ("jobs",)),
    ModelEntry("z2-agents-js-sigterm", "Z2", lambda b: AgentsJsSigterm()),
    ModelEntry("z3-agents-js-2321", "Z3", _jobs(DeadIdleProcess), ("jobs",)),
    ModelEntry("z3-livekit-py-1.8.9", "Z3", _jobs(DeadIdleProcessPy), ("jobs",)),
    ModelEntry("z4-livekit-5868", "Z4", _jobs(LiveKit5868), ("jobs",)),
    ModelEntry("z5-hot-respawn", "Z5", _jobs(HotRespawn), ("jobs",)),
    ModelEntry("z6-supervisord-stopping", "Z6", lambda b: SupervisordStopping()),
    ModelEntry("z7-gunicorn-boot", "Z7", lambda b: GunicornBoot()),
)

_BY_NAME = {m.name: m for m in MODELS}


def names() -> list[str]:
    return [m.name for m in MODELS]


def get(name: str) -> ModelEntry:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownModel(
            f"there is no model {name!r}; the models are: {', '.join(names())} "
            "(see wayout check --list)"
        ) from None


def build(name: str, bounds: Bounds | None = None) -> Design[Any]:
    return get(name).build(bounds)
