"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # `make test` runs slow tests that also carry this marker, each bounded by
    # a timeout; keep such a test well under a minute.
    config.addinivalue_line(
        "markers", "ci_slice: a slow test that `make test` runs too (keep it short)"
    )
