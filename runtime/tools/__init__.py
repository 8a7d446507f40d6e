"""wayout's tooling: the ``wayout`` command, its subcommands, bench, demo and soak.

Nothing in the library (``runtime``'s root) imports this package.
"""
