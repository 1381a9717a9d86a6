"""Announced JSON Schemas, kept by the broker as text and shown parsed when they parse."""

from __future__ import annotations

from typing import Any

import msgspec


def parse_schema(text: str) -> Any | None:
    """The schema as JSON, or None when the service sent none or sent something that is not JSON."""
    if not text:
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
