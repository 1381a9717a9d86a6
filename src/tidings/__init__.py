"""Tidings: an event streaming platform for Python services.

This module exposes the public API only; the layers beneath (records,
storage, protocol, core, server, client, backends, app) are reached through it.

    async with tidings.connect(service="checkout") as client:
        await client.publish("orders", {"id": 1}, key="customer-7")

The client names are loaded on first use (PEP 562 ``__getattr__``): every
``tidings.*`` module imports this package first, and the storage engine or
the broker core must not drag the asyncio client in with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tidings import errors
from tidings.errors import TidingsError

if TYPE_CHECKING:
    from tidings.app import App, Context, Event, Exponential, Fixed, NoBackoff, event
    from tidings.client import (
        Client,
        Message,
        PublishResult,
        PublishResults,
        Subscription,
        SyncClient,
        connect,
        connect_sync,
    )

__version__ = "0.1.0"

__all__ = [
    "App",
    "Client",
    "Context",
    "Event",
    "Exponential",
    "Fixed",
    "Message",
    "NoBackoff",
    "PublishResult",
    "PublishResults",
    "Subscription",
    "SyncClient",
    "TidingsError",
    "__version__",
    "connect",
    "connect_sync",
    "errors",
    "event",
]

_CLIENT_NAMES = frozenset(
    {
        "Client",
        "Message",
        "PublishResult",
        "PublishResults",
        "Subscription",
        "SyncClient",
        "connect",
        "connect_sync",
    }
)
# The service framework's typed events and retry policies (tidings.app), loaded on first use too.
_APP_NAMES = frozenset({"App", "Context", "Event", "event", "Exponential", "Fixed", "NoBackoff"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES or name in _APP_NAMES:
        value = getattr(
            importlib.import_module("tidings.client" if name in _CLIENT_NAMES else "tidings.app"), name
        )
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tidings' has no attribute {name!r}")
