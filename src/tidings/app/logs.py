"""Structured logs: one JSON object per line, with the fields the framework attaches to its records.

The handler runner logs each decision with ``extra={"tidings": {...}}``
(topic, partition, offset, group, handler, delivery_count, decision); a log
pipeline (Loki, Elasticsearch, ``jq``) should be able to filter on those
fields without parsing the message text. ``JsonFormatter`` lifts that dict to
the top level of the line, next to ``time`` (RFC 3339, UTC), ``level``,
``logger`` and ``message``, and adds ``exception`` with the formatted
traceback when there is one. Any other ``extra=`` field a service sets is kept
too, so services log structured data the same way the framework does.

``configure_logging`` is what ``tidings run --log-format json|text`` calls: it
replaces the root handlers (so running twice does not print every line twice).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "JsonFormatter", "LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON; the framework's ``tidings`` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name in _STANDARD:
                continue
            if name == "tidings" and isinstance(value, dict):
                line.update(value)
            else:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(
    level: str = "info", log_format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Send every log record to ``stream`` (stderr) as text or JSON lines, at ``level`` and above."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format is one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
