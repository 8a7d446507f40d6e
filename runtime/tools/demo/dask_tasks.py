"""The tasks of ``wayout demo --dask`` (importable by name in Dask workers and their children)."""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from runtime.tools.demo.workload import hog


def add(a: int, b: int) -> int:
    return a + b


def segfault() -> None:
    ctypes.string_at(0)


def exit_now(code: int = 3) -> None:
    os._exit(code)


def hang(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


#: Allocate megabytes, make every page resident and hold them: the demo's hog.
grow = hog


def segfault_once(token_dir: str, value: int) -> int:
    """Segfault on the first try (no token yet); return ``value`` on the next."""
    token = Path(token_dir) / "tried"
    if not token.exists():
        token.touch()
        segfault()
    return value


def ppe_factory(max_workers: int, settings: dict[str, Any]) -> cf.Executor:
    """A ProcessPoolExecutor in the plugin's place, to compare (it takes no wayout settings).

    Dask's worker is daemonic and multiprocessing refuses it children; the
    plugin clears the flag only for wayout's pool, so the comparison does it here.
    """
    multiprocessing.current_process().daemon = False
    return cf.ProcessPoolExecutor(max_workers=max_workers)
