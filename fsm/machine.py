"""``transitions`` machines built from lifecycle specs.

One shared ``transitions.Machine`` per spec drives every object of that
lifecycle (every child, every job), as the library intends for many models.
An object only needs a ``state`` attribute, plus ``kind``/``ident`` for error
messages.

We fire an event through the machine's ``Event.trigger(model)``, which is
exactly what the trigger methods that ``Machine.add_model`` binds onto a model
call. We do not call ``add_model``: it binds one partial per event onto every
model (about 6 KiB each) and keeps the models in a list whose membership test
is linear, which a supervisor of thousands of jobs (and a model checker that
restores millions of snapshots) cannot afford. The machine still validates
every trigger, so an event that the spec does not allow in the object's state
raises ``InvalidTransition``; it is never ignored.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol

from transitions import Machine
from transitions.core import MachineError

from fsm.errors import InvalidTransition
from fsm.spec import LifecycleSpec


class Model(Protocol):
    """Anything that lives in a lifecycle."""

    state: str

    @property
    def kind(self) -> str: ...

    @property
    def ident(self) -> object: ...


class Lifecycle:
    """A spec together with the one ``transitions`` machine built from it."""

    def __init__(self, spec: LifecycleSpec) -> None:
        self.spec = spec
        self.machine = Machine(
            model=None,
            states=[{"name": s.name, "final": s.final} for s in spec.states],
            transitions=[
                {"trigger": e.event, "source": e.source, "dest": e.dest} for e in spec.edges
            ],
            initial=spec.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            name=f"{spec.name}: ",
        )
        self._events: dict[str, Any] = dict(self.machine.events)
        self._next = spec.successor_map

    def fire_compiled(self, model: Model, event: str) -> str:
        """``fire`` without the ``transitions`` call overhead, for the model checker.

        The lookup is the spec's own edge map (``LifecycleSpec.successor``), so
        it is the same lifecycle, not a second table; a test walks both engines
        through the same events and asserts they agree. A ``transitions``
        trigger costs about 7 µs, which would cap the explorer near a thousand
        states per second; this costs well under one. (``SupervisorCore._fire``
        does this same lookup inline, on the same ``successor_map``.)
        """
        dest = self._next.get((model.state, event))  # spec.successor, without two calls
        if dest is None:
            raise InvalidTransition(model.kind, model.ident, model.state, event)
        model.state = dest
        return dest

    def fire(self, model: Model, event: str) -> str:
        """Move ``model`` along ``event``; return its new state or raise ``InvalidTransition``."""
        ev = self._events.get(event)
        if ev is None:
            raise InvalidTransition(model.kind, model.ident, model.state, event)
        try:
            ev.trigger(model)
        except MachineError:
            raise InvalidTransition(model.kind, model.ident, model.state, event) from None
        return model.state


@cache
def lifecycle(spec: LifecycleSpec) -> Lifecycle:
    """The shared machine of ``spec`` (built once per spec)."""
    return Lifecycle(spec)
