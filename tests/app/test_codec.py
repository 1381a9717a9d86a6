"""The codec: JSON data with CloudEvents binary-mode headers, read back by Tidings and by the official SDK."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pydantic
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1 import kafka as ce_kafka_v1

from tidings.app import (
    DeadLetter,
    Event,
    NoBackoff,
    decide,
    decode,
    decode_data,
    encode,
    event,
    read_envelope,
)
from tidings.app.codec import format_time
from tidings.app.ids import timestamp_ms
from tidings.errors import EventValidationError


class OrderPlaced(Event, topic="orders.placed", version=1):
    order_id: str
    sku: str
    qty: int


@event(topic="payments.confirmed", version=2)
class PaymentConfirmed(pydantic.BaseModel):
    payment_id: str
    amount_cents: int = pydantic.Field(ge=0)


ORDER = OrderPlaced(order_id="o-1", sku="tea", qty=2)


def test_a_struct_event_becomes_json_data_and_cloudevents_headers():
    encoded = encode(ORDER, source="checkout")
    assert encoded.topic == "orders.placed"
    assert json.loads(encoded.data) == {"order_id": "o-1", "sku": "tea", "qty": 2}
    headers = encoded.headers
    assert set(headers) == {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"}
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_source"] == b"checkout"
    assert headers["ce_type"] == b"orders.placed.v1"
    assert headers["content-type"] == b"application/json"
    made = uuid.UUID(headers["ce_id"].decode())
    assert made.version == 7
    # The time is the id's own millisecond, RFC 3339 in UTC with a Z.
    moment = datetime.fromtimestamp(timestamp_ms(made) / 1000, UTC)
    assert headers["ce_time"] == format_time(moment).encode()
    assert headers["ce_time"].endswith(b"Z") and len(headers["ce_time"]) == len(b"2024-07-01T12:00:00.123Z")
    assert encoded.id == headers["ce_id"].decode() == encoded.envelope.id


def test_round_trip_of_a_struct_event():
    encoded = encode(ORDER, source="checkout")
    decoded = decode(encoded.data, encoded.headers, OrderPlaced)
    assert decoded.event == ORDER
    assert decoded.envelope == encoded.envelope
    assert decoded.envelope.source == "checkout"
    assert decoded.envelope.time is not None and decoded.envelope.time.tzinfo is not None


def test_round_trip_of_a_pydantic_event():
    payment = PaymentConfirmed(payment_id="p-1", amount_cents=1250)
    encoded = encode(payment, source="payments")
    assert encoded.topic == "payments.confirmed"
    assert encoded.headers["ce_type"] == b"payments.confirmed.v2"
    assert json.loads(encoded.data) == {"payment_id": "p-1", "amount_cents": 1250}
    assert decode(encoded.data, encoded.headers, PaymentConfirmed).event == payment


def test_explicit_id_time_type_extensions_and_extra_headers():
    when = datetime(2024, 7, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    encoded = encode(
        ORDER,
        source="checkout",
        id="order-o-1",
        time=when,
        type="com.example.order.placed",
        extensions={"traceparent": "00-abc-def-01", "tenant": "acme"},
        headers={"x-request-id": "r-9", "raw": b"\x00\x01"},
    )
    h = encoded.headers
    assert h["ce_id"] == b"order-o-1"
    assert h["ce_time"] == b"2024-07-01T12:00:00.123Z"  # converted to UTC, milliseconds
    assert h["ce_type"] == b"com.example.order.placed"
    assert h["ce_traceparent"] == b"00-abc-def-01"
    assert h["ce_tenant"] == b"acme"
    assert h["x-request-id"] == b"r-9" and h["raw"] == b"\x00\x01"
    envelope = read_envelope(h)
    assert envelope.extensions == {"traceparent": "00-abc-def-01", "tenant": "acme"}
    assert envelope.time == datetime(2024, 7, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_headers_may_not_smuggle_cloudevents_attributes():
    with pytest.raises(ValueError, match="ce_id"):
        encode(ORDER, source="s", headers={"ce_id": "x"})
    with pytest.raises(ValueError, match="Content-Type"):
        encode(ORDER, source="s", headers={"Content-Type": "text/plain"})
    with pytest.raises(ValueError, match="extension"):
        encode(ORDER, source="s", extensions={"Bad-Name": "x"})
    with pytest.raises(ValueError, match="source"):
        encode(ORDER, source="")


def test_plain_data_needs_a_type_or_a_topic():
    encoded = encode({"a": 1}, source="svc", topic="misc")
    assert encoded.headers["ce_type"] == b"misc"
    assert encoded.headers["content-type"] == b"application/json"
    assert decode(encoded.data, encoded.headers, dict).event == {"a": 1}
    raw = encode(b"\x00\xff", source="svc", type="blob.v1")
    assert raw.headers["content-type"] == b"application/octet-stream"
    assert decode(raw.data, raw.headers, bytes).event == b"\x00\xff"
    text = encode("héllo", source="svc", type="greeting")
    assert text.data == "héllo".encode() and text.headers["content-type"].startswith(b"text/plain")
    with pytest.raises(ValueError, match="type"):
        encode({"a": 1}, source="svc")
    with pytest.raises(TypeError, match="cannot encode"):
        encode(object(), source="svc", topic="t")


# -- the official CloudEvents SDK reads what Tidings writes ---------------------------------------


def test_the_cloudevents_sdk_reads_a_tidings_event_from_kafka_binary_mode():
    encoded = encode(ORDER, source="checkout", extensions={"tenant": "acme"})
    message = ce_kafka.KafkaMessage(headers=encoded.headers, key=b"customer-7", value=encoded.data)
    parsed = ce_kafka.from_binary(message, JSONFormat(), CloudEvent)  # validates every attribute
    assert isinstance(parsed, CloudEvent)
    assert parsed.get_id() == encoded.id
    assert parsed.get_source() == "checkout"
    assert parsed.get_type() == "orders.placed.v1"
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_time() == encoded.envelope.time
    assert parsed.get_extension("tenant") == "acme"
    assert parsed.get_data() == {"order_id": "o-1", "sku": "tea", "qty": 2}
    # Auto-detection of the content mode and of the spec version agree.
    assert ce_kafka.from_kafka_event(message).get_id() == encoded.id


def test_the_older_cloudevents_kafka_api_reads_it_too():
    encoded = encode(PaymentConfirmed(payment_id="p", amount_cents=1), source="payments")
    parsed = ce_kafka_v1.from_binary(ce_kafka_v1.KafkaMessage(encoded.headers, None, encoded.data))
    assert parsed["id"] == encoded.id
    assert parsed["type"] == "payments.confirmed.v2"
    assert parsed["source"] == "payments"
    assert parsed["datacontenttype"] == "application/json"
    assert parsed.data == {"payment_id": "p", "amount_cents": 1}


def test_tidings_reads_an_event_the_cloudevents_sdk_wrote():
    sdk_event = CloudEvent(
        attributes={
            "id": "sdk-1",
            "source": "/legacy/orders",
            "type": "orders.placed.v1",
            "time": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "datacontenttype": "application/json",
        },
        data={"order_id": "o-9", "sku": "mug", "qty": 1},
    )
    message = ce_kafka.to_binary(sdk_event, JSONFormat())
    decoded = decode(message.value, message.headers, OrderPlaced)
    assert decoded.event == OrderPlaced(order_id="o-9", sku="mug", qty=1)
    assert decoded.envelope.id == "sdk-1"
    assert decoded.envelope.time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- what cannot be decoded is a validation error, which the runner dead-letters at once -----------


def good_headers() -> dict[str, bytes]:
    return encode(ORDER, source="checkout").headers


@pytest.mark.parametrize(
    ("data", "headers", "match"),
    [
        (
            b'{"order_id":"o-1","sku":"tea","qty":"two"}',
            good_headers(),
            r"Expected `int`, got `str` - at `\$.qty`",
        ),
        (b'{"order_id":"o-1","sku":"tea"}', good_headers(), "missing required field `qty`"),
        (b"not json", good_headers(), "malformed|JSON"),
        (b"{}", {k: v for k, v in good_headers().items() if k != "ce_id"}, "missing ce_id"),
        (b"{}", {}, "not a CloudEvent: missing ce_id, ce_source, ce_type, ce_specversion"),
        (b"{}", {**good_headers(), "ce_specversion": b"0.3"}, "specversion"),
        (b"{}", {**good_headers(), "ce_time": b"yesterday"}, "RFC 3339"),
        (b"{}", {**good_headers(), "ce_time": b"2024-01-01T00:00:00"}, "UTC offset"),
        (b"{}", {**good_headers(), "content-type": b"application/xml"}, "JSON expected"),
        (b"{}", {**good_headers(), "ce_source": b"\xff"}, "not UTF-8"),
    ],
)
def test_what_is_not_a_valid_event_raises_event_validation_error(data, headers, match):
    with pytest.raises(EventValidationError, match=match) as caught:
        decode(data, headers, OrderPlaced)
    # ... which the runner sends to the dead-letter topic at once, with the reason.
    decision = decide(caught.value, delivery_count=1, retries=5, backoff=NoBackoff())
    assert isinstance(decision, DeadLetter)
    assert decision.reason.startswith("EventValidationError: ")


def test_a_pydantic_validation_failure_carries_pydantic_s_text():
    encoded = encode({"payment_id": "p", "amount_cents": -5}, source="s", type="payments.confirmed.v2")
    with pytest.raises(EventValidationError, match="greater than or equal to 0") as caught:
        decode(encoded.data, encoded.headers, PaymentConfirmed)
    assert caught.value.event_type == "payments.confirmed.v2"
    assert encoded.id in str(caught.value)


def test_the_type_header_is_not_checked_against_the_class():
    """A v2 consumer reads v1 data that still validates: the shape is what counts."""
    encoded = encode({"order_id": "o", "sku": "s", "qty": 1}, source="s", type="orders.placed.v0")
    assert decode(encoded.data, encoded.headers, OrderPlaced).event.qty == 1


def test_decode_data_without_headers():
    assert decode_data(b'{"order_id":"o","sku":"s","qty":1}', OrderPlaced) == OrderPlaced(
        order_id="o", sku="s", qty=1
    )
    assert decode_data(b"[1,2]", list[int], content_type="application/vnd.x+json") == [1, 2]
