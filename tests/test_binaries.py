"""The missing-binary rule: skip loudly on a developer's machine, fail under CI=true."""

from __future__ import annotations

import pytest

from tests.binaries import started
from tidings.testing.servers import MissingBinary


def missing() -> None:
    raise MissingBinary("no frobd on PATH (apt install frobd)")


def test_a_missing_binary_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="frobd NOT RUN: no frobd on PATH"):
        started(missing, "frobd")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="frobd is required under CI=true"):
        started(missing, "frobd")
    assert started(lambda: 42, "anything") == 42
