"""What the demo's children run: an initializer and a few jobs.

Standard library only: a forkserver or spawn child imports this module to
unpickle its initializer and jobs, and that import should cost nothing.

The scene script steers an initializer from the parent through a *control
directory*: a file named ``hang-next-initializer`` makes the next initializer
that manages to delete it hang. Deleting a file succeeds in exactly one
process, so exactly one child hangs however many warm up at once.
"""

from __future__ import annotations

import os
import time

#: Touching one byte per page is what makes memory resident (and counted).
_PAGE = 4096
#: Longer than any scene: a hang lasts until the supervisor ends it.
_FOREVER_S = 3600.0

HANG_NEXT_INITIALIZER = "hang-next-initializer"


def warm_up(control_dir: str, seconds: float) -> None:
    """The pool's initializer: "load a model" for ``seconds``, or hang if told to."""
    if claim(control_dir, HANG_NEXT_INITIALIZER):
        time.sleep(_FOREVER_S)
    time.sleep(seconds)


def claim(control_dir: str, name: str) -> bool:
    """True in the one process that deletes ``control_dir/name``."""
    try:
        os.unlink(os.path.join(control_dir, name))
    except FileNotFoundError:
        return False
    return True


def render(frame: int, seconds: float) -> str:
    """An ordinary job: some work, then a small result."""
    time.sleep(seconds)
    return f"frame {frame} rendered"


def stuck(seconds: float) -> None:
    """A job that runs far past any sensible timeout (cancellation interrupts it)."""
    time.sleep(seconds)


def hog(megabytes: int, seconds: float) -> int:
    """Allocate ``megabytes``, make every page resident, and hold them."""
    data = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(data), _PAGE):
        data[offset] = 1
    time.sleep(seconds)
    return len(data)
