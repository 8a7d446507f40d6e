"""Imported once inside the forkserver that wayout starts (multiprocessing's preload).

Two reasons, both about what every forked child inherits from the forkserver:

* ``runtime.child`` (asyncio, msgspec, the protocol) is imported here once, so
  a new child does not pay for those imports: replacing a dead child costs a
  fork, not an interpreter's worth of imports.
* wayout starts the forkserver with SIGINT and SIGTERM blocked, so that a
  signal to the whole process group cannot kill it (and every child with it)
  while the pool drains. A blocked mask is inherited by every process the
  forkserver forks, including other libraries' workers (a forkserver
  ``ProcessPoolExecutor`` could then never be terminated). So every fork
  unblocks them again in the child, and only the forkserver stays deaf.
"""

from __future__ import annotations

import os
import signal

from runtime import child  # noqa: F401  (the preload itself)

_GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _unblock_in_child() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)


# Only a forkserver started by wayout has them blocked; anywhere else, do nothing.
if _GROUP_SIGNALS <= signal.pthread_sigmask(signal.SIG_BLOCK, []):
    os.register_at_fork(after_in_child=_unblock_in_child)
