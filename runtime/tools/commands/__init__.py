"""The subcommands of ``wayout``, one module each (see ``runtime.tools.cli``)."""
