"""Typed events: a class that names its topic and schema version, as a msgspec Struct or a pydantic model.

Two ways to declare one, and one protocol underneath them::

    class OrderPlaced(tidings.Event, topic="orders.placed", version=1):   # a msgspec Struct
        order_id: str
        sku: str
        qty: int

    @tidings.event(topic="orders.placed", version=1)                       # a pydantic model,
    class OrderPlaced(pydantic.BaseModel):                                  # a plain Struct, a dataclass
        order_id: str
        ...

Either way the class gets ``__tidings_event__``, an ``EventInfo`` (topic,
version, CloudEvents type), and everything else (the codec, the App, the
schema export) reads only that attribute through ``event_info``. One
protocol rather than a base class per library keeps pydantic optional: this
module never imports it (it only looks for it in ``sys.modules``), so
``import tidings`` works without it.

``Event`` is the msgspec way. Its metaclass takes the ``topic``, ``version``
and ``type`` class keywords and hands every other keyword (``frozen``,
``rename``, ``tag``...) to msgspec's ``StructMeta``, so struct options still
combine: ``class X(Event, topic="x", rename="camel")``. Two defaults differ
from a bare Struct, because events are values that travel: ``frozen=True``
(an event is immutable once created; instances are hashable) and
``kw_only=True`` for every subclass (fields are passed by name, so a v2
subclass can add required fields after v1's defaulted ones).

Versions and the CloudEvents ``type``: ``version`` (default 1) is the
schema version of the data. The CloudEvents ``type`` defaults to
``"<topic>.v<version>"`` (``orders.placed.v1``), not the class name: the
type is a contract with consumers in any language, and a Python class name
changes with every refactoring while the topic and the version do not.
Pass ``type="com.example.order.placed"`` to choose another. A subclass that
gives only a new ``version`` keeps its parent's topic (``class
OrderPlacedV2(OrderPlaced, version=2)``); one that gives a new ``topic``
starts at version 1.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import msgspec

__all__ = ["Event", "EventInfo", "EventMeta", "event", "event_info", "event_schema", "is_event_class"]

T = TypeVar("T", bound=type)

ATTRIBUTE: Final = "__tidings_event__"
# A topic name as the broker takes it (see tidings.protocol.names), checked here without importing it.
_TOPIC: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,248}")


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What the framework needs to know about an event class, beyond its fields."""

    topic: str
    version: int = 1
    type: str = ""
    """The CloudEvents ``type``; ``"<topic>.v<version>"`` when not given."""

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str) or not _TOPIC.fullmatch(self.topic):
            raise ValueError(
                f"an event's topic must be a topic name (letters, digits, _ . -), not {self.topic!r}"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"an event's version must be an int >= 1, not {self.version!r}")
        if not self.type:
            object.__setattr__(self, "type", default_type(self.topic, self.version))
        elif not isinstance(self.type, str) or self.type.strip() != self.type:
            raise ValueError(f"an event's type must be a non-empty string without spaces, not {self.type!r}")


def default_type(topic: str, version: int) -> str:
    """The CloudEvents ``type`` of an event class that names none: ``orders.placed.v1``."""
    return f"{topic}.v{version}"


def _derive(parent: EventInfo | None, topic: str | None, version: int | None, type_: str | None) -> EventInfo:
    """The info of a class declaring ``topic``/``version``/``type``, given what it inherits."""
    if topic is None and parent is None:
        raise TypeError("an event class needs a topic: class X(Event, topic='orders.placed')")
    if topic is None:
        assert parent is not None
        topic = parent.topic
        version = parent.version if version is None else version
    return EventInfo(topic=topic, version=1 if version is None else version, type=type_ or "")


class EventMeta(msgspec.StructMeta):
    """``StructMeta`` that also takes the ``topic``, ``version`` and ``type`` class keywords."""

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        /,
        *,
        topic: str | None = None,
        version: int | None = None,
        type: str | None = None,
        **struct_config: Any,
    ) -> EventMeta:
        struct_config.setdefault("kw_only", True)
        cls = super().__new__(mcls, name, bases, namespace, **struct_config)
        if topic is not None or version is not None or type is not None:
            setattr(cls, ATTRIBUTE, _derive(getattr(cls, ATTRIBUTE, None), topic, version, type))
        return cls


class Event(msgspec.Struct, metaclass=EventMeta, frozen=True):
    """Base of events declared as msgspec Structs: ``class X(Event, topic="x", version=1)``.

    Frozen and keyword-only (see the module docstring). A subclass without a
    topic anywhere in its bases is an abstract base for other events.
    """

    __tidings_event__: ClassVar[EventInfo]

    if TYPE_CHECKING:
        # What type checkers see of the class keywords EventMeta takes.
        def __init_subclass__(
            cls,
            *,
            topic: str | None = None,
            version: int | None = None,
            type: str | None = None,
            **struct_config: Any,
        ) -> None: ...


def event(topic: str, version: int = 1, *, type: str | None = None) -> Callable[[T], T]:
    """Declare any class as an event: a pydantic model, a plain msgspec Struct or a dataclass.

    ``@event(topic="orders.placed", version=1)`` sets the same ``EventInfo``
    that ``Event``'s class keywords set, so both kinds are handled alike.
    """
    info = EventInfo(topic=topic, version=version, type=type or "")

    def declare(cls: T) -> T:
        if not inspect.isclass(cls):
            raise TypeError(f"@event decorates a class, not {cls!r}")
        setattr(cls, ATTRIBUTE, info)
        return cls

    return declare


def is_event_class(cls: object) -> bool:
    return isinstance(cls, type) and isinstance(getattr(cls, ATTRIBUTE, None), EventInfo)


def event_info(cls_or_event: object) -> EventInfo:
    """The ``EventInfo`` of an event class or instance; ``TypeError`` if it was not declared as one."""
    cls = cls_or_event if isinstance(cls_or_event, type) else type(cls_or_event)
    info = getattr(cls, ATTRIBUTE, None)
    if not isinstance(info, EventInfo):
        raise TypeError(
            f"{cls.__qualname__} is not an event class: subclass tidings.Event with a topic, "
            "or decorate it with @tidings.event(topic=...)"
        )
    return info


def is_pydantic_model(cls: object) -> bool:
    """True for a pydantic v2 model class. Never imports pydantic: a model exists only if it was imported."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    return base is not None and isinstance(cls, type) and issubclass(cls, base)


def event_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of an event class's data, plus its Tidings metadata under ``x-tidings``.

    msgspec's ``msgspec.json.schema`` or pydantic's ``model_json_schema``,
    whichever built the class, describing what a consumer accepts (pydantic's validation mode,
    like msgspec's): both emit JSON Schema 2020-12. The observability
    work publishes these (AsyncAPI, the dashboard).
    """
    info = event_info(cls)
    pydantic = is_pydantic_model(cls)
    schema: dict[str, Any] = dict(cls.model_json_schema() if pydantic else msgspec.json.schema(cls))  # type: ignore[attr-defined]
    schema["x-tidings"] = {"topic": info.topic, "version": info.version, "type": info.type}
    return schema
