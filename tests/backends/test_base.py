"""The backend contract's own parts: choosing a backend by URL, Capabilities and their docs, values."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from datetime import datetime

import pytest

from tidings.backends import base
from tidings.backends.base import (
    Capabilities,
    capability_docs,
    capability_names,
    check_start,
    check_subscription,
    dead_letter_topic,
    open_backend,
    redact,
    register_backend,
    url_options,
)
from tidings.backends.memory import MemoryBackend
from tidings.backends.tidings import CAPABILITIES, TidingsBackend
from tidings.core import dead_letters
from tidings.errors import (
    InvalidArgument,
    InvalidBackendConfig,
    NotConnected,
    NotSupported,
    TidingsError,
    UnknownBackend,
)

# -- open_backend ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "shown"),
    [
        ("tidings://127.0.0.1:7400", TidingsBackend, "tidings://127.0.0.1:7400"),
        ("TIDINGS://broker.internal", TidingsBackend, "TIDINGS://broker.internal"),
        ("tidings+tls://broker.example.com:7443", TidingsBackend, "tidings+tls://broker.example.com:7443"),
        ("memory://", MemoryBackend, "memory://"),
        ("memory://shop", MemoryBackend, "memory://shop"),
        ("memory://shop/", MemoryBackend, "memory://shop"),
    ],
)
def test_the_scheme_picks_the_backend_which_is_not_opened_yet(url, kind, shown):
    backend = open_backend(url, service="inventory")
    assert type(backend) is kind
    assert backend.url == shown and backend.service == "inventory"
    with pytest.raises(NotConnected):
        backend.client  # noqa: B018  (not opened: no client yet)


def test_an_unknown_scheme_names_the_url_and_the_known_schemes():
    with pytest.raises(UnknownBackend) as caught:
        open_backend("kafka://broker:9092", service="inventory")
    message = str(caught.value)
    assert "'kafka'" in message and "kafka://broker:9092" in message
    assert "memory://, nats://, redis://, tidings://, tidings+tls://" in message
    assert isinstance(caught.value, TidingsError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("url", ["broker:7400", "", "://nothing", "/var/run/broker"])
def test_a_url_without_a_scheme_is_refused_with_the_known_schemes(url):
    with pytest.raises(UnknownBackend, match=r"not a backend URL.*known schemes: memory://"):
        open_backend(url, service="inventory")


def test_passwords_never_appear_in_errors_or_urls():
    with pytest.raises(UnknownBackend) as caught:
        open_backend("kafka://admin:hunter2@broker:9092", service="x")
    assert "hunter2" not in str(caught.value) and "admin:***@broker:9092" in str(caught.value)
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("nats://user@host") == "nats://user@host"


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("tidings://127.0.0.1:7400", {"lingr": 0.1}, r"unknown option\(s\) lingr .*options: .*linger"),
        ("tidings://127.0.0.1:99999", {}, "bad port"),
        ("tidings://127.0.0.1:7400", {"linger": -1.0}, "linger"),
        ("memory://shop", {"prefetch": 3}, r"unknown option\(s\) prefetch"),
        ("memory://shop/orders", {}, "expected memory:// or memory://NAME"),
        ("memory://a b", {}, "expected memory:// or memory://NAME"),
    ],
)
def test_bad_options_and_urls_are_refused_at_once(url, options, match):
    with pytest.raises(InvalidBackendConfig, match=match):
        open_backend(url, service="inventory", **options)


def test_a_bad_service_name_is_refused_at_once():
    with pytest.raises(InvalidBackendConfig, match="invalid service name"):
        open_backend("tidings://127.0.0.1:7400", service="no spaces")


def test_options_are_the_config_fields():
    backend = open_backend("tidings://127.0.0.1:7400", service="inventory", linger=0.002, token="t")
    assert isinstance(backend, TidingsBackend)
    assert (backend.config.linger, backend.config.token) == (0.002, "t")
    client_config = backend.config.client_config()
    assert (client_config.linger, client_config.token, client_config.service) == (0.002, "t", "inventory")


def test_new_schemes_plug_in_without_editing_the_registry():
    made = {}

    def opener(url, *, service, **options):
        made.update(url=url, service=service, options=options)
        return "a backend"

    register_backend("fake", opener)
    register_backend("lazy", "tidings.backends.tidings:from_url")
    register_backend("broken", "tidings.backends.no_such_module:from_url")
    try:
        assert open_backend("fake://x", service="s", depth=3) == "a backend"
        assert made == {"url": "fake://x", "service": "s", "options": {"depth": 3}}
        with pytest.raises(InvalidBackendConfig):  # loaded lazily; the client then refuses the scheme
            open_backend("lazy://127.0.0.1:7400", service="s")
        with pytest.raises(InvalidBackendConfig, match="the broken:// backend cannot be loaded"):
            open_backend("broken://x", service="s")
        assert "fake" in base.known_schemes()
    finally:
        for scheme in ("fake", "lazy", "broken"):
            base._openers.pop(scheme, None)
    with pytest.raises(InvalidArgument):
        register_backend("not a scheme", opener)


# -- Capabilities ---------------------------------------------------------------------------


def test_every_capability_is_a_documented_bool_that_defaults_to_false():
    docs = capability_docs()
    assert set(docs) == set(capability_names())
    for name in capability_names():
        assert getattr(Capabilities(), name) is False, name
        assert len(docs[name]) > 40, f"{name}: say what a backend that declares it guarantees"
    source = inspect.getsource(Capabilities)
    annotations = [n.target.id for n in ast.parse(source).body[0].body if isinstance(n, ast.AnnAssign)]
    assert annotations == [*capability_names(), "reasons"]


def test_missing_capabilities_say_why_and_refuse_with_not_supported():
    capabilities = Capabilities(persistent=True, reasons={"request_reply": "no core NATS here"})
    assert "request_reply" in capabilities.missing() and "persistent" not in capabilities.missing()
    assert capabilities.why("request_reply") == "no core NATS here"
    assert capabilities.why("replay_by_time") == "the backend does not declare it"
    capabilities.require("persistent", "a durable outbox")
    with pytest.raises(
        NotSupported, match="request needs the 'request_reply' capability: no core NATS"
    ) as caught:
        capabilities.require("request_reply", "request")
    assert caught.value.capability == "request_reply"


def test_reasons_must_name_capabilities_and_do_not_change_equality():
    with pytest.raises(InvalidBackendConfig, match="unknown capabilities"):
        Capabilities(reasons={"telepathy": "no"})
    assert Capabilities(persistent=True, reasons={"ack_deadline": "x"}) == Capabilities(persistent=True)


def test_the_native_backend_explains_everything_it_lacks():
    assert CAPABILITIES.missing() == ["dedupe_by_id"]
    assert "producer" in CAPABILITIES.why("dedupe_by_id")


# -- values shared with the broker ---------------------------------------------------------------


@pytest.mark.parametrize("group", ["billing", "shop.payments", ".odd..group.", "a-b_c"])
def test_dead_letter_names_match_the_brokers(group):
    assert dead_letter_topic("orders", group) == dead_letters.dead_letter_topic("orders", group)


def test_dead_letter_headers_match_the_brokers():
    names = [
        base.DLQ_TOPIC,
        base.DLQ_PARTITION,
        base.DLQ_OFFSET,
        base.DLQ_GROUP,
        base.DLQ_DELIVERIES,
        base.DLQ_REASON,
    ]
    assert names == [
        dead_letters.PREFIX + s for s in ("topic", "partition", "offset", "group", "deliveries", "reason")
    ]


@pytest.mark.parametrize("start", ["earliest", "latest", 0, 17, datetime(2025, 1, 1)])
def test_start_positions(start):
    assert check_start(start) == start


@pytest.mark.parametrize("start", ["now", -1, True, 1.5, None])
def test_bad_start_positions(start):
    with pytest.raises(InvalidArgument, match="start must be"):
        check_start(start)


@pytest.mark.parametrize(
    ("mode", "prefetch", "ack_deadline", "max_deliveries"),
    [("fifo", 1, 1.0, 1), ("shared", 0, 1.0, 1), ("shared", 1, 0.0, 1), ("partitioned", 1, 1.0, 0)],
)
def test_bad_subscription_arguments(mode, prefetch, ack_deadline, max_deliveries):
    with pytest.raises(InvalidArgument):
        check_subscription(mode, "latest", prefetch, ack_deadline, max_deliveries)


def test_url_options_are_typed_by_the_config_and_code_wins():
    @dataclasses.dataclass
    class Config:
        url: str
        service: str
        replicas: int = 1
        window: float = 1.0
        strict: bool = False
        name: str | None = None

    url, options = url_options("x://a:1,b:2/db?replicas=3&window=0.5&strict=true&name=n", Config)
    assert url == "x://a:1,b:2/db" and options == {"replicas": 3, "window": 0.5, "strict": True, "name": "n"}
    assert url_options("x://a:1", Config) == ("x://a:1", {})
    with pytest.raises(InvalidBackendConfig, match="unknown option 'replica'"):
        url_options("x://a?replica=3", Config)
    with pytest.raises(InvalidBackendConfig, match="strict='maybe'"):
        url_options("x://a?strict=maybe", Config)
    with pytest.raises(InvalidBackendConfig, match="unknown option 'service'"):
        url_options("x://a?service=other", Config)
