"""Helpers shipped with Tidings for testing code that uses it: no pytest imports here.

``ConnectionPair`` joins a client and a server protocol ``Connection`` in
memory (``tidings.testing.pair``).
"""

from tidings.testing.pair import ConnectionPair, default_hello, default_welcome

__all__ = ["ConnectionPair", "default_hello", "default_welcome"]
