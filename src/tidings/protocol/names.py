"""Topic names, subscription patterns and how a pattern matches a topic.

A topic name is one or more *tokens* joined by dots, like ``orders`` or
``shop.orders.eu``. A token is made of ASCII letters, digits, ``_`` and ``-``.
A subscription names a topic or a *pattern*, with the wildcards of NATS
subjects:

* ``*`` stands for exactly one token: ``orders.*`` matches ``orders.eu`` but
  not ``orders`` or ``orders.eu.paris``.
* ``>`` stands for one or more tokens and may only be the last token:
  ``orders.>`` matches ``orders.eu`` and ``orders.eu.paris`` but not ``orders``.

The rules are checked on the wire, through the frames' field types, so the
broker core never sees a name it would have to reject. The syntax is ASCII on
purpose: every log line, file name and metric label can carry it unescaped.
"""

from __future__ import annotations

import re
from typing import Final

MAX_NAME_LENGTH: Final = 249
"""Longest topic, pattern, group or service name, in characters (Kafka's limit)."""

_TOKEN = r"[A-Za-z0-9_-]+"
_PATTERN_TOKEN = rf"(?:{_TOKEN}|\*)"

# ``\Z`` rather than ``$``: ``$`` also matches before a trailing newline.
TOPIC_NAME: Final = rf"^{_TOKEN}(?:\.{_TOKEN})*\Z"
TOPIC_PATTERN: Final = rf"^(?:{_PATTERN_TOKEN}(?:\.{_PATTERN_TOKEN})*(?:\.>)?|>)\Z"
NAME: Final = r"^[A-Za-z0-9_.-]+\Z"
"""Groups and services: one token of the same letters, dots allowed (``shop.payments``)."""

_TOPIC_RE = re.compile(TOPIC_NAME)
_PATTERN_RE = re.compile(TOPIC_PATTERN)


def is_topic_name(name: str) -> bool:
    """True when ``name`` is a valid concrete topic name (no wildcards)."""
    return len(name) <= MAX_NAME_LENGTH and _TOPIC_RE.match(name) is not None


def is_topic_pattern(pattern: str) -> bool:
    """True when ``pattern`` is a valid topic name or wildcard pattern."""
    return len(pattern) <= MAX_NAME_LENGTH and _PATTERN_RE.match(pattern) is not None


def is_wildcard(pattern: str) -> bool:
    """True when ``pattern`` has a wildcard, so it may match more than one topic."""
    return any(token in ("*", ">") for token in pattern.split("."))


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether the subscription ``pattern`` covers ``topic`` (both assumed valid).

    This is a pure function of two strings, so the broker core, the client and
    the tests all match topics the same way.
    """
    wanted = pattern.split(".")
    tokens = topic.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(tokens) == len(wanted)
