"""Starting a third-party server for a test: the one rule for a missing binary, in one place.

A test that needs ``nats-server``, ``redis-server``, PostgreSQL, Chromium or node skips, loudly, on
a developer's machine without it, and fails under ``CI=true``, where a skip would hide a missing
install step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

from tidings.testing.servers import MissingBinary

T = TypeVar("T")


def started(start: Callable[[], T], what: str) -> T:
    """``start()``, or the skip (locally) / failure (under CI=true) that names what is missing."""
    try:
        return start()
    except MissingBinary as exc:
        missing(what, str(exc))


def missing(what: str, reason: str) -> NoReturn:
    """Skip loudly (locally) or fail (under CI=true): ``what`` cannot run here, for ``reason``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true: {reason}")
    pytest.skip(f"!!! {what} NOT RUN: {reason} !!!")
