"""Mutation testing of the checker: seed one fault at a time into the core.

``catalogue`` is the data: each mutant names a file, a scope in it (a
function, a class, or a module-level name), an exact text anchor that must
occur once in that scope, its replacement, and what kind of fault it is.
``engine`` applies one mutant to a copy of the tree (the working tree is
never written), runs ``wayout check`` on the copy, and optionally the fast
unit tests. ``wayout mutants`` (runtime/tools/commands/mutants.py) is the
command.
"""
