"""Helpers shipped with Tidings for testing code that uses it: no pytest imports here.

* ``ConnectionPair`` joins a client and a server protocol ``Connection`` in
  memory (``tidings.testing.pair``).
* ``tidings.testing.conformance``: the backend conformance suite (scenarios
  every backend must pass for the capabilities it declares).
* ``tidings.testing.inprocess``: ``InProcessBroker``, the real broker on this
  event loop behind in-memory pipes, which ``memory://`` runs on.
* ``tidings.testing.servers``: private broker, nats-server and redis-server
  processes on free ports; ``tidings.testing.raw``: a frame-level test client.

Only ``pair`` is imported here; import the others by name (``inprocess``
brings in the broker's server, which most users of this package do not need).
"""

from tidings.testing.pair import ConnectionPair, default_hello, default_welcome

__all__ = ["ConnectionPair", "default_hello", "default_welcome"]
