"""OpenTelemetry across events: a publish is a PRODUCER span, its handling a CONSUMER span, one trace.

When the ``opentelemetry-api`` package is installed (``pip install tidings[otel]``)
and the service configured a tracer provider, the framework:

* wraps each publish (``app.publish``, ``ctx.publish``, ``app.outbox(...).publish``,
  ``app.request``) in a PRODUCER span named ``"<topic> publish"`` and writes its
  W3C trace context into the event's headers (``traceparent``, ``tracestate``),
  so the context travels with the event on every backend;
* runs each handler in a CONSUMER span named ``"<topic> process"`` whose parent
  is the context read back from those headers, so a trace follows an order from
  checkout through inventory to shipping, across processes and across the
  outbox (whose rows keep the context of the transaction that wrote them);
* marks the consumer span as an error when the handler raised, with the exception.

Attributes follow OpenTelemetry's messaging conventions (``messaging.system``,
``messaging.destination.name``, ``messaging.consumer.group.name``,
``messaging.message.id``, partition and offset). Without the package this
module does nothing at all: ``ENABLED`` is False and the helpers yield empty
headers, so the cost of tracing off is one attribute lookup per publish.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised where the optional package is absent
    ENABLED: Final = False
else:
    ENABLED = True  # type: ignore[misc]

if TYPE_CHECKING:
    from tidings.backends.base import Delivery

__all__ = ["ENABLED", "TRACE_HEADERS", "consumer_span", "producer_span"]

TRACE_HEADERS: Final = ("traceparent", "tracestate")
SYSTEM: Final = "tidings"


class _HeaderGetter:
    """Reads a carrier of byte-valued headers (a ``Delivery``'s) for the W3C propagator."""

    def get(self, carrier: Mapping[str, bytes], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [bytes(value).decode("latin-1")]

    def keys(self, carrier: Mapping[str, bytes]) -> list[str]:
        return list(carrier)


_getter: Final = _HeaderGetter()


@contextlib.contextmanager
def producer_span(topic: str, service: str, *, operation: str = "publish") -> Iterator[dict[str, str]]:
    """A PRODUCER span around one publish; yields the headers that carry its context (empty when off)."""
    if not ENABLED:
        yield {}
        return
    tracer = trace.get_tracer("tidings")
    attributes = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send" if operation == "publish" else "create",
        "messaging.destination.name": topic,
        "messaging.client.id": service,
    }
    with tracer.start_as_current_span(f"{topic} {operation}", kind=SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield carrier


@contextlib.contextmanager
def consumer_span(delivery: Delivery, group: str, event_id: str | None) -> Iterator[Any]:
    """A CONSUMER span for handling ``delivery``, child of the producer's context in its headers."""
    if not ENABLED:
        yield None
        return
    tracer = trace.get_tracer("tidings")
    parent = propagate.extract(delivery.headers, getter=_getter)  # type: ignore[arg-type]
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": delivery.topic,
        "messaging.consumer.group.name": group,
        "messaging.destination.partition.id": str(delivery.partition),
        "messaging.tidings.offset": delivery.offset,
        "messaging.tidings.delivery_count": delivery.delivery_count,
    }
    if event_id:
        attributes["messaging.message.id"] = event_id
    with tracer.start_as_current_span(
        f"{delivery.topic} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def failed(span: Any, error: BaseException) -> None:
    """Mark a consumer span as failed by ``error`` (what the handler raised)."""
    if ENABLED and span is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
