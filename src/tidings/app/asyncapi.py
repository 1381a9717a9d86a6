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

The same document can be built from what services *announced* to a running
broker instead of from their code (``asyncapi_from_services``; ``tidings
asyncapi --from-broker`` reads the broker's ``/api/flow``): each service's
published topics and announced event types become ``send`` operations, its
subscriptions ``receive`` operations, and the announced JSON Schemas (with
their ``$defs``) the payloads. Both paths share the builder; only where a
schema comes from differs (a class, or a schema document).

The output is checked by the official parser (``@asyncapi/parser``) in the tests.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import msgspec

from tidings.app.events import event_info, is_pydantic_model

if TYPE_CHECKING:
    from tidings.app.application import App

__all__ = [
    "CLOUDEVENTS_HEADERS",
    "AnnouncedEvent",
    "AnnouncedService",
    "asyncapi_document",
    "asyncapi_from_services",
]

ASYNCAPI_VERSION: Final = "3.0.0"
REF: Final = "#/components/schemas/"
LOCAL_DEFS: Final = "#/$defs/"

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

    def adopt(self, schema: Mapping[str, Any], name: str) -> dict[str, Any]:
        """``{"$ref": ...}`` to a standalone JSON Schema document (its ``$defs`` become components).

        For schemas that arrive as documents (announced to a broker) rather than as classes;
        ``name`` is used when the top level is not itself a reference to one of its ``$defs``.
        """
        document = _rehome(schema)
        for nested, part in document.pop("$defs", {}).items():
            self.components.setdefault(_key(nested), part)
        document = {k: v for k, v in document.items() if not k.startswith("x-")}
        if set(document) == {"$ref"}:
            return document
        key = _key(str(document.get("title") or name))
        self.components.setdefault(key, document)
        return {"$ref": REF + key}


def _rehome(value: Any) -> Any:
    """A copy of ``value`` with every ``#/$defs/X`` reference pointing at ``#/components/schemas/X``."""
    if isinstance(value, Mapping):
        out = {k: _rehome(v) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith(LOCAL_DEFS):
            out["$ref"] = REF + _key(ref[len(LOCAL_DEFS) :])
        return out
    if isinstance(value, list):
        return [_rehome(v) for v in value]
    return value


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
            payload = self.schemas.ref(cls)
            self.add_message(
                info.type,
                topic=info.topic,
                version=info.version,
                title=cls.__name__,
                doc=doc,
                payload=payload,
            )
        return key

    def add_message(
        self, ce_type: str, *, topic: str, version: int, title: str, doc: str, payload: dict[str, Any] | None
    ) -> str:
        """The message of CloudEvents type ``ce_type``, added once; the class and schema paths meet here."""
        key = _key(ce_type)
        if key not in self.messages:
            self.messages[key] = {
                "name": ce_type,
                "title": title,
                **({"summary": doc.splitlines()[0]} if doc else {}),
                "contentType": "application/json",
                "headers": CLOUDEVENTS_HEADERS,
                **({"payload": payload} if payload is not None else {}),
                "x-tidings": {"topic": topic, "version": version, "type": ce_type},
            }
        return key

    def channel(self, topic: str, cls: type, *, address: str | None = "") -> str:
        """The channel of ``topic`` (``address`` None: a dynamic reply address), carrying ``cls``."""
        return self.channel_of(topic, [self.message(cls)], address=address)

    def channel_of(self, topic: str, messages: Iterable[str], *, address: str | None = "") -> str:
        """The channel of ``topic``, with ``messages`` (keys of ``self.messages``) added to it."""
        key = _key(topic)
        channel = self.channels.setdefault(key, {"address": topic if address == "" else address})
        for message in messages:
            channel.setdefault("messages", {})[message] = {"$ref": f"#/components/messages/{message}"}
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
    return _document(
        build,
        title=title or ", ".join(app.name for app in apps) or "Tidings services",
        version=version,
        description="Generated by `tidings asyncapi` from the services' declarations.",
        servers=_servers(apps),
    )


def _document(
    build: _Builder, *, title: str, version: str, description: str, servers: dict[str, Any]
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
    }
    if servers:
        document["servers"] = servers
    document["channels"] = build.channels
    document["operations"] = build.operations
    document["components"] = {"messages": build.messages, "schemas": build.schemas.components}
    return document


# -- from what services announced to a broker ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnouncedEvent:
    """An event type a service announced: its topic, CloudEvents type, version and JSON Schema."""

    topic: str
    type: str
    version: int
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AnnouncedService:
    """What a broker knows of one service: topics it published to, (topic, group) pairs it consumed,
    the event types it announced, and which types each subscription handles."""

    name: str
    publishes: tuple[str, ...] = ()
    subscribes: tuple[tuple[str, str], ...] = ()
    event_types: tuple[AnnouncedEvent, ...] = ()
    handles: tuple[tuple[str, str, str], ...] = ()
    """``(topic, group, type)``."""


def _announced_message(build: _Builder, event: AnnouncedEvent) -> str:
    top = _top_schema(event.schema)
    payload = None if event.schema is None else build.schemas.adopt(event.schema, event.type)
    title = str(top.get("title") or event.type)
    doc = str(top.get("description") or "")
    return build.add_message(
        event.type, topic=event.topic, version=event.version, title=title, doc=doc, payload=payload
    )


def _top_schema(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The schema that describes the event, also when the top level is a ``$ref`` into ``$defs`` (msgspec)."""
    if schema is None:
        return {}
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith(LOCAL_DEFS) and isinstance(defs, Mapping):
        target = defs.get(ref[len(LOCAL_DEFS) :])
        return target if isinstance(target, Mapping) else {}
    return schema


def asyncapi_from_services(
    services: Sequence[AnnouncedService],
    *,
    title: str | None = None,
    version: str = "1.0.0",
    source: str = "a broker",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``services`` as a broker saw them (see the module docstring).

    A type handled but announced by no service becomes a message without a payload schema: the
    broker knows its name, not its shape.
    """
    build = _Builder()
    announced = {e.type: e for s in services for e in s.event_types}
    for service in services:
        for event in service.event_types:
            message = _announced_message(build, event)
            channel = build.channel_of(event.topic, [message])
            build.operation(
                f"{service.name}.emit.{event.type}",
                {
                    "action": "send",
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "messages": _refs(channel, [message]),
                    "summary": f"{service.name} emits {event.type}",
                    "x-tidings": {"service": service.name},
                },
            )
        typed = {e.topic for e in service.event_types}
        for topic in service.publishes:
            if topic in typed:
                continue
            channel = build.channel_of(topic, [])
            build.operation(
                f"{service.name}.publish.{topic}",
                {
                    "action": "send",
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "summary": f"{service.name} publishes to {topic} (no event type announced)",
                    "x-tidings": {"service": service.name},
                },
            )
        for topic, group in service.subscribes:
            types = sorted(
                {t for h_topic, h_group, t in service.handles if (h_topic, h_group) == (topic, group)}
            )
            messages = []
            for ce_type in types:
                known = announced.get(ce_type) or AnnouncedEvent(topic, ce_type, _version_of(ce_type))
                messages.append(_announced_message(build, known))
            channel = build.channel_of(topic, messages)
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{service.name} consumes {topic} as group {group}",
                "x-tidings": {"service": service.name, "group": group},
            }
            if messages:
                operation["messages"] = _refs(channel, messages)
            build.operation(f"{service.name}.receive.{topic}.{group}", operation)
    names = ", ".join(s.name for s in services)
    about = f"Generated by `tidings asyncapi --from-broker` from what services announced to {source}."
    return _document(
        build,
        title=title or names or "Tidings services",
        version=version,
        description=about,
        servers={},
    )


def _version_of(ce_type: str) -> int:
    """``orders.placed.v2`` -> 2; 1 when the type names no version."""
    match = re.search(r"\.v(\d+)$", ce_type)
    return int(match.group(1)) if match else 1
