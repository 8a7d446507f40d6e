"""Keep the pool's own log records off a tool's screen while it runs.

The demo, the bench and the soak kill children on purpose, and the pool logs
each failure as a warning: the tool's own table or story already says so.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_pool_logs(keep: int | None = logging.ERROR) -> Iterator[None]:
    """Records of the ``wayout`` loggers at ``keep`` or above go to stderr, none elsewhere.

    ``keep=None`` drops them all (the demo narrates what they say). Everything
    is put back afterwards: a tool may be called from a longer-lived program.
    """
    logger = logging.getLogger("wayout")
    handler: logging.Handler
    if keep is None:
        handler = logging.NullHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(keep)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
