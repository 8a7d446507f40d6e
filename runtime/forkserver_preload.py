"""Imported once inside the forkserver that wayout starts (multiprocessing's preload).

Three reasons, all about what every forked child inherits from the forkserver:

* ``runtime.child`` (asyncio, msgspec, the protocol) is imported here once, so
  a new child does not pay for those imports: replacing a dead child costs a
  fork, not an interpreter's worth of imports.
* wayout starts the forkserver with SIGINT and SIGTERM blocked, so that a
  signal to the whole process group cannot kill it (and every child with it)
  while the pool drains. A blocked mask is inherited by every process the
  forkserver forks, including other libraries' workers (a forkserver
  ``ProcessPoolExecutor`` could then never be terminated). So every fork
  unblocks them again in the child, and only the forkserver stays deaf.
* The parent's ``__main__`` is imported here once, as multiprocessing means
  to (``'__main__'`` is in the default preload list) but, before CPython's
  fix for gh-137996, never does: the path it looks for is passed under
  another name. Without it every child runs the main script again before it
  starts (``spawn._fixup_main_from_path``): 60-100 ms per child here with
  ``wayout`` or ``pytest`` as the main script. ``ensure_forkserver`` hands
  the main module over in ``MAIN_ENV``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from multiprocessing import process, spawn

from runtime import child  # noqa: F401  (the preload itself)

#: The environment variable that carries the parent's main module to the forkserver.
MAIN_ENV = "WAYOUT_FORKSERVER_MAIN"

_GROUP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _MainImportTooLong(Exception):
    pass


def _give_up(signum: int, frame: object) -> None:
    raise _MainImportTooLong


def _import_parent_main() -> None:
    """Import the parent's ``__main__`` as a child would, once, for every child.

    As spawn.prepare() does in each child: the script by path, or the module
    by name, run as ``__mp_main__`` with the parent's ``sys.argv``. A main
    module that cannot be imported here is left to each child, as before.
    The forkserver serves no fork before this returns, so it is bounded: a
    main script that does its work at import (no ``if __name__ ==
    "__main__"`` guard) is cut off after ``runtime.process.MAIN_IMPORT_BOUND_S``
    instead of wedging every start; each child then imports it, and its
    spawn_timeout applies, as without this preload.
    """
    given = os.environ.pop(MAIN_ENV, None)
    if not given:
        return
    main = json.loads(given)
    argv = sys.argv
    sys.argv = list(main.get("argv") or argv)
    previous = signal.signal(signal.SIGALRM, _give_up)
    # Again every second after that, in case the script swallows the first.
    signal.setitimer(signal.ITIMER_REAL, float(main["bound_s"]), 1.0)
    process.current_process()._inheriting = True  # type: ignore[attr-defined]
    try:
        try:
            if main.get("path"):
                spawn.import_main_path(main["path"])
            elif main.get("name"):
                spawn._fixup_main_from_name(main["name"])  # type: ignore[attr-defined]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)  # an alarm still due raises here
    except BaseException:
        pass  # each child imports it then, as multiprocessing does without a preload
    finally:
        signal.signal(signal.SIGALRM, previous)
        del process.current_process()._inheriting  # type: ignore[attr-defined]
        sys.argv = argv


_import_parent_main()


def _unblock_in_child() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)


# Only a forkserver started by wayout has them blocked; anywhere else, do nothing.
if _GROUP_SIGNALS <= signal.pthread_sigmask(signal.SIG_BLOCK, []):
    os.register_at_fork(after_in_child=_unblock_in_child)
