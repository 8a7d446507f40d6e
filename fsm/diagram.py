"""DOT diagrams drawn from lifecycle specs.

The diagrams are generated from the same ``LifecycleSpec`` values that the
machines are built from, so a picture cannot drift from the code: a test and
``wayout diagrams --check`` compare the committed ``diagrams/*.dot`` with what
these functions produce.

Only the pure DOT builder of the ``graphviz`` package is used here (its
``Digraph.source``); rendering to SVG needs the ``dot`` binary and happens in
``runtime.tools.commands.diagrams``. The output is deterministic byte for byte: nodes
and edges follow the declaration order of the spec, and ``graphviz`` writes
attributes sorted by name.

Conventions:

* a timeout edge is dashed and labelled with the *setting* that bounds it;
* every other edge is labelled with its event;
* a final state has a double border;
* the initial state is entered from a small unlabelled dot;
* a state's ``doc`` is its tooltip (shown when hovering the SVG).
"""

from __future__ import annotations

from collections.abc import Iterable

import graphviz

from fsm.lifecycles import ALL
from fsm.spec import Edge, LifecycleSpec

#: The node from which the arrow into the initial state starts. It is not an
#: identifier, so it cannot clash with a state name (specs require identifiers).
INITIAL_MARKER = "(initial)"

_FONT = "Helvetica"


def to_dot(spec: LifecycleSpec) -> str:
    """The DOT source of ``spec``'s diagram."""
    graph = graphviz.Digraph(
        spec.name,
        graph_attr={
            "rankdir": "LR",
            "fontname": _FONT,
            "labelloc": "t",
            "label": _text(
                f"{spec.name} lifecycle: dashed edges are timeouts (labelled with their "
                "setting), double borders are final states"
            ),
            "tooltip": _text(spec.doc or spec.name),
        },
        node_attr={"fontname": _FONT, "shape": "box", "style": "rounded"},
        edge_attr={"fontname": _FONT, "fontsize": "10"},
    )
    graph.node(INITIAL_MARKER, label="", shape="point", width="0.15", tooltip="initial state")
    graph.edge(INITIAL_MARKER, spec.initial)
    for state in spec.states:
        attrs = {"tooltip": _text(f"{state.name}: {state.doc}" if state.doc else state.name)}
        if state.final:
            attrs["peripheries"] = "2"
        graph.node(state.name, **attrs)
    for edge in spec.edges:
        graph.edge(edge.source, edge.dest, **_edge_attrs(edge))
    source: str = graph.source
    return source


def dot_files(specs: Iterable[LifecycleSpec] = ALL) -> dict[str, str]:
    """``{"<lifecycle>.dot": source}`` for each spec, in the order given."""
    files: dict[str, str] = {}
    for spec in specs:
        filename = f"{spec.name}.dot"
        if filename in files:
            raise ValueError(f"two lifecycles are named {spec.name!r}; diagrams need unique names")
        files[filename] = to_dot(spec)
    return files


def _edge_attrs(edge: Edge) -> dict[str, str]:
    if edge.timeout is not None:
        return {
            "label": edge.timeout,
            "style": "dashed",
            "tooltip": _text(f"{edge.source}: when {edge.timeout} passes -> {edge.dest}"),
        }
    return {
        "label": edge.event,
        "tooltip": _text(f"{edge.source}: on {edge.event} -> {edge.dest}"),
    }


def _text(value: str) -> str:
    # graphviz quotes strings but treats backslashes as DOT escapes (\n, \l);
    # docs are plain text, so backslashes are doubled.
    return str(graphviz.escape(value))
