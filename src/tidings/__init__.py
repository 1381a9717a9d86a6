"""Tidings: an event streaming platform for Python services.

This module exposes the public API only; the layers beneath (records,
storage, protocol, core, server, client, backends, app) are reached through it.
"""

from __future__ import annotations

from tidings import errors
from tidings.errors import TidingsError

__all__ = ["TidingsError", "__version__", "errors"]

__version__ = "0.1.0"
