"""What the model tests share: planting a fault in the real core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fsm.core as core_module
from fsm.core import SupervisorCore


@pytest.fixture
def plant(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, Any], None]]:
    """``plant(name, fn)``: SupervisorCore's method ``name`` is ``fn`` for this
    test, in the class and in the core's table of event handlers alike."""
    def put(name: str, fn: Any) -> None:
        monkeypatch.setattr(SupervisorCore, name, fn)
        for event, handler in list(core_module._HANDLERS.items()):
            if handler.__name__ == name:
                monkeypatch.setitem(core_module._HANDLERS, event, fn)
    yield put
