"""wayout's runtime: the only place that touches processes, sockets and clocks.

It performs the commands of the sans-I/O core (``fsm``) and feeds it events;
it takes no decisions of its own.
"""
