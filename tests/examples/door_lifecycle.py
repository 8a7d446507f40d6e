"""A user's own lifecycle, drawn with ``wayout diagrams --spec door_lifecycle.py:DOOR``."""

from fsm import LifecycleSpec, State, Transition

DOOR = LifecycleSpec(
    name="door",
    initial="opening",
    doc="one opening of an automatic door: it never stays open or half-way",
    states=[
        State("closed", doc="at rest", final=True),
        State("opening", timeout="motor_timeout", on_timeout="closing", doc="motor runs"),
        State("open", timeout="hold_open", on_timeout="closing", doc="held open"),
        State("closing", timeout="motor_timeout", on_timeout="closed", doc="motor runs back"),
    ],
    transitions=[
        Transition("sensor", "closing", "opening"),
        Transition("fully_open", "opening", "open"),
        Transition("fully_closed", "closing", "closed"),
    ],
)
