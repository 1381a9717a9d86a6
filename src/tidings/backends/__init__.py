"""Backends: one small contract (``base``) and its implementations, chosen by URL.

* ``base``: the ``Publisher`` / ``Subscriber`` / ``Delivery`` protocols, ``Capabilities``,
  start positions, and ``open_backend(url, service=...)``, which picks the
  backend by the URL's scheme. The framework imports this module only.
* ``tidings``: ``tidings://`` and ``tidings+tls://``, the native broker through ``tidings.client``.
* ``memory``: ``memory://`` and ``memory://NAME``, the same broker in this
  process, through in-memory pipes, for tests.

``nats://`` and ``redis://`` plug into the same registry (``register_backend``).
Every backend passes the conformance suite (``tidings.testing.conformance``)
for everything it declares.
"""

from tidings.backends.base import (
    Admin,
    Backend,
    Capabilities,
    Delivery,
    OutgoingMessage,
    Publisher,
    Receipt,
    Reply,
    StartPosition,
    Subscriber,
    Subscription,
    open_backend,
    register_backend,
)

__all__ = [
    "Admin",
    "Backend",
    "Capabilities",
    "Delivery",
    "OutgoingMessage",
    "Publisher",
    "Receipt",
    "Reply",
    "StartPosition",
    "Subscriber",
    "Subscription",
    "open_backend",
    "register_backend",
]
