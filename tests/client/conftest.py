from __future__ import annotations

import pytest

from tidings.client import MockListener


@pytest.fixture
def listener() -> MockListener:
    return MockListener()
