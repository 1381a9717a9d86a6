"""Declaring events: msgspec Structs through tidings.app.Event, pydantic models through @event."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import msgspec
import pydantic
import pytest

from tidings.app import Event, EventInfo, event, event_info, event_schema, is_event_class


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str
    sku: str
    qty: int


class OrderPlacedV2(OrderPlaced, version=2):
    channel: str = "web"


class Shipped(Event, topic="orders.shipped", version=3, type="com.example.shipped", rename="camel"):
    order_id: str
    carrier_name: str


@event(topic="payments.confirmed", version=2)
class PaymentConfirmed(pydantic.BaseModel):
    payment_id: str
    amount_cents: int = pydantic.Field(ge=0)


def test_a_struct_event_names_its_topic_version_and_cloudevents_type():
    info = event_info(OrderPlaced)
    assert info == EventInfo(topic="orders.placed", version=1, type="orders.placed.v1")
    assert event_info(OrderPlaced(order_id="o-1", sku="tea", qty=2)) is info  # instances too


def test_events_are_frozen_keyword_only_structs():
    order = OrderPlaced(order_id="o-1", sku="tea", qty=2)
    with pytest.raises(AttributeError):
        order.qty = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        OrderPlaced("o-1", "tea", 2)  # type: ignore[misc]
    assert hash(order) == hash(OrderPlaced(order_id="o-1", sku="tea", qty=2))
    assert isinstance(order, msgspec.Struct)


def test_struct_options_combine_with_the_event_keywords():
    assert event_info(Shipped) == EventInfo("orders.shipped", 3, "com.example.shipped")
    assert (
        msgspec.json.encode(Shipped(order_id="o", carrier_name="dhl"))
        == b'{"orderId":"o","carrierName":"dhl"}'
    )


def test_a_new_version_inherits_the_topic_and_adds_fields_after_defaults():
    assert event_info(OrderPlacedV2) == EventInfo("orders.placed", 2, "orders.placed.v2")
    assert OrderPlacedV2(order_id="o", sku="s", qty=1).channel == "web"


def test_a_new_topic_in_a_subclass_starts_at_version_1():
    class Base(Event):
        tenant: str

    class Created(Base, topic="tenants.created"):
        name: str

    assert not is_event_class(Base)
    assert event_info(Created) == EventInfo("tenants.created", 1)
    with pytest.raises(TypeError, match="not an event class"):
        event_info(Base)


def test_a_version_without_a_topic_anywhere_is_refused():
    with pytest.raises(TypeError, match="needs a topic"):

        class Orphan(Event, version=2):
            x: int


@pytest.mark.parametrize(
    ("topic", "version"),
    [("", 1), ("has space", 1), ("orders.placed", 0), ("orders.placed", True), ("orders.placed", "1")],
)
def test_bad_topics_and_versions_are_refused(topic, version):
    with pytest.raises(ValueError):
        EventInfo(topic=topic, version=version)


def test_a_pydantic_model_is_an_event_through_the_decorator():
    assert is_event_class(PaymentConfirmed)
    assert event_info(PaymentConfirmed) == EventInfo("payments.confirmed", 2, "payments.confirmed.v2")
    assert event_info(PaymentConfirmed(payment_id="p", amount_cents=5)).topic == "payments.confirmed"


def test_the_decorator_works_on_plain_structs_and_dataclasses_too():
    @event(topic="a.b", type="com.example.ab")
    class Plain(msgspec.Struct):
        x: int

    @event(topic="c.d", version=4)
    @dataclasses.dataclass
    class Data:
        y: str

    assert event_info(Plain) == EventInfo("a.b", 1, "com.example.ab")
    assert event_info(Data).type == "c.d.v4"
    with pytest.raises(TypeError):
        event(topic="x")(lambda: None)


def test_classes_that_are_not_events_are_named_in_the_error():
    class Nothing(msgspec.Struct):
        x: int

    assert not is_event_class(Nothing)
    assert not is_event_class(Nothing(x=1))
    with pytest.raises(TypeError, match="Nothing is not an event class"):
        event_info(Nothing)


def test_json_schema_of_a_struct_event():
    schema = event_schema(OrderPlaced)
    assert schema["x-tidings"] == {"topic": "orders.placed", "version": 1, "type": "orders.placed.v1"}
    body = schema["$defs"]["OrderPlaced"]
    assert body["required"] == ["order_id", "sku", "qty"]
    assert body["properties"]["qty"] == {"type": "integer"}


def test_json_schema_of_a_pydantic_event():
    schema = event_schema(PaymentConfirmed)
    assert schema["x-tidings"]["type"] == "payments.confirmed.v2"
    assert schema["properties"]["amount_cents"]["minimum"] == 0
    assert schema["required"] == ["payment_id", "amount_cents"]


def test_tidings_app_imports_and_works_without_pydantic():
    """pydantic is an optional extra: block it and use events and the codec all the same."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None  # any import of pydantic now fails
        import tidings.app as app

        class Ping(app.Event, topic="pings"):
            n: int

        encoded = app.encode(Ping(n=1), source="svc")
        assert app.decode(encoded.data, encoded.headers, Ping).event == Ping(n=1)
        assert "pydantic" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
