"""AsyncAPI 3.0 from the services themselves: what each App receives, answers and emits.

The document is built from declarations the code already makes, so it cannot
drift from it: ``@app.subscribe`` is a ``receive`` operation on the event's
topic, ``@app.respond`` a ``receive`` operation with a ``reply`` (the reply
type is the handler's return annotation), and ``App(emits=[...])`` /
``app.emits(...)`` a ``send`` operation per event type. Channels are topics
(``address`` = the topic); messages are event types, keyed by their
CloudEvents ``type`` (``orders.placed.v1``), with the JSON Schema of the
data as payload and the CloudEvents attributes the codec writes
(``ce_id``, ``ce_source``, ...) as headers.

Schemas come from msgspec (``schema_components``) or pydantic
(``model_json_schema``) with references rewritten to
``#/components/schemas/...``: an AsyncAPI document resolves ``$ref`` from its
root, so a payload that kept its own ``$defs`` would point nowhere.
Tidings-specific facts (group, mode, retries, concurrency, version) travel as
``x-tidings`` extensions, which AsyncAPI allows on every object.

The output is checked by the official parser (``@asyncapi/parser``) in the tests.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import msgspec

from tidings.app.events import event_info, is_pydantic_model

if TYPE_CHECKING:
    from tidings.app.application import App

__all__ = ["CLOUDEVENTS_HEADERS", "asyncapi_document"]

ASYNCAPI_VERSION: Final = "3.0.0"
REF: Final = "#/components/schemas/"

CLOUDEVENTS_HEADERS: Final[dict[str, Any]] = {
    "type": "object",
    "description": "CloudEvents attributes, Kafka protocol binding (binary mode): one header each.",
    "properties": {
        "ce_id": {"type": "string", "description": "Event id (UUIDv7), set by the producer."},
        "ce_source": {"type": "string", "description": "The service that emitted the event."},
        "ce_type": {"type": "string", "description": "<topic>.v<version> unless the class names one."},
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it happened."},
        "content-type": {"type": "string", "const": "application/json"},
    },
    "required": ["ce_id", "ce_source", "ce_type", "ce_specversion"],
}
_ID: Final = re.compile(r"[^\w.\-]")


def _key(text: str) -> str:
    """A component or operation key AsyncAPI accepts (``^[\\w.\\-]+$``)."""
    return _ID.sub("_", text)


class _Schemas:
    """The document's ``components.schemas``, filled as event classes are met; each class once."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self._refs: dict[type, dict[str, Any]] = {}

    def ref(self, cls: type) -> dict[str, Any]:
        """``{"$ref": ...}`` to ``cls``'s schema, adding it (and what it refers to) to the components."""
        if cls not in self._refs:
            if is_pydantic_model(cls):
                schema = cls.model_json_schema(ref_template=REF + "{model}")  # type: ignore[attr-defined]
                for name, nested in schema.pop("$defs", {}).items():
                    self.components.setdefault(name, nested)
                name = _key(schema.get("title", cls.__name__))
                self.components.setdefault(name, schema)
                self._refs[cls] = {"$ref": REF + name}
            else:
                (top,), nested = msgspec.json.schema_components([cls], ref_template=REF + "{name}")
                for name, part in nested.items():
                    self.components.setdefault(name, part)
                self._refs[cls] = top if "$ref" in top else self._inline(cls, top)
        return self._refs[cls]

    def _inline(self, cls: type, schema: dict[str, Any]) -> dict[str, Any]:
        name = _key(cls.__name__)
        self.components.setdefault(name, schema)
        return {"$ref": REF + name}


class _Builder:
    def __init__(self) -> None:
        self.schemas = _Schemas()
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}

    def message(self, cls: type) -> str:
        """The message key of event class ``cls`` (its CloudEvents type), added once."""
        info = event_info(cls)
        key = _key(info.type)
        if key not in self.messages:
            doc = (cls.__doc__ or "").strip()
            self.messages[key] = {
                "name": info.type,
                "title": cls.__name__,
                **({"summary": doc.splitlines()[0]} if doc else {}),
                "contentType": "application/json",
                "headers": CLOUDEVENTS_HEADERS,
                "payload": self.schemas.ref(cls),
                "x-tidings": {"topic": info.topic, "version": info.version, "type": info.type},
            }
        return key

    def channel(self, topic: str, cls: type, *, address: str | None = "") -> str:
        """The channel of ``topic`` (``address`` None: a dynamic reply address), carrying ``cls``."""
        key = _key(topic)
        channel = self.channels.setdefault(
            key, {"address": topic if address == "" else address, "messages": {}}
        )
        message = self.message(cls)
        channel["messages"][message] = {"$ref": f"#/components/messages/{message}"}
        return key

    def operation(self, key: str, body: dict[str, Any]) -> None:
        self.operations[_key(key)] = body


def _reply_type(handler: Any) -> type | None:
    """The event class a responder returns, from its annotations (None if it does not say)."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # annotations naming what cannot be imported here: no reply schema
        return None
    returned = hints.get("return")
    return returned if isinstance(returned, type) and hasattr(returned, "__tidings_event__") else None


def _refs(channel: str, messages: Iterable[str]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages]


def _servers(apps: Sequence[App]) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    for app in apps:
        parts = urlsplit(app.broker_url)
        if parts.scheme == "memory" or not parts.hostname:
            continue
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        servers.setdefault(
            _key(f"{parts.scheme}-{host}"),
            {"host": host, "protocol": parts.scheme, "description": f"used by {app.name}"},
        )
    return servers


def asyncapi_document(
    apps: Sequence[App], *, title: str | None = None, version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (as JSON-ready dicts) of ``apps``: see the module docstring."""
    build = _Builder()
    for app in apps:
        for spec in app.specs:
            topic = event_info(spec.event_type).topic
            channel = build.channel(topic, spec.event_type)
            message = build.message(spec.event_type)
            handler = getattr(spec.handler, "__name__", spec.name)
            tidings: dict[str, Any] = {"service": app.name, "group": spec.group, "mode": spec.mode}
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "messages": _refs(channel, [message]),
                "summary": f"{app.name}: {handler}",
            }
            if spec.respond:
                reply = _reply_type(spec.handler)
                if reply is not None:
                    reply_channel = build.channel(f"{topic}.reply", reply, address=None)
                    operation["reply"] = {
                        "channel": {"$ref": f"#/channels/{reply_channel}"},
                        "messages": _refs(reply_channel, [build.message(reply)]),
                    }
            else:
                tidings |= {"retries": spec.retries, "concurrency": spec.concurrency}
            operation["x-tidings"] = tidings
            build.operation(f"{app.name}.{handler}", operation)
        for cls in app.emitted:
            channel = build.channel(event_info(cls).topic, cls)
            build.operation(
                f"{app.name}.emit.{event_info(cls).type}",
                {
                    "action": "send",
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "messages": _refs(channel, [build.message(cls)]),
                    "summary": f"{app.name} emits {cls.__name__}",
                    "x-tidings": {"service": app.name},
                },
            )
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title or ", ".join(app.name for app in apps) or "Tidings services",
            "version": version,
            "description": "Generated by `tidings asyncapi` from the services' declarations.",
        },
    }
    servers = _servers(apps)
    if servers:
        document["servers"] = servers
    document["channels"] = build.channels
    document["operations"] = build.operations
    document["components"] = {"messages": build.messages, "schemas": build.schemas.components}
    return document
