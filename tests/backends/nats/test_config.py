"""``NatsConfig`` from a URL and options: unknown or bad settings fail at open_backend, naming them."""

from __future__ import annotations

import pytest
from nats.js import api

from tidings.backends import open_backend
from tidings.backends.nats import NatsBackend, NatsConfig
from tidings.backends.nats.consumers import consumer_config, start_policy
from tidings.errors import InvalidBackendConfig


def test_open_backend_picks_nats() -> None:
    backend = open_backend("nats://u:secret@127.0.0.1:1", service="billing", replicas=3, partitions=4)
    assert isinstance(backend, NatsBackend)
    assert backend.url == "nats://u:***@127.0.0.1:1" and backend.service == "billing"
    assert (backend.config.replicas, backend.config.partitions) == (3, 4)
    assert "secret" not in repr(backend)


def test_unknown_option_names_the_known_ones() -> None:
    with pytest.raises(InvalidBackendConfig, match=r"unknown option\(s\) replica .*duplicate_window"):
        open_backend("nats://127.0.0.1:1", service="s", replica=3)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("replicas", 0),
        ("partitions", 0),
        ("duplicate_window", 0),
        ("heartbeat", 3.0),
        ("max_ack_pending", 0),
        ("sync_check", "maybe"),
        ("request_timeout", -1),
    ],
)
def test_bad_values(option: str, value: object) -> None:
    with pytest.raises(InvalidBackendConfig, match=option.split("_", maxsplit=1)[0]):
        NatsConfig.from_url("nats://127.0.0.1:1", service="s", **{option: value})


def test_several_servers_keep_their_credentials() -> None:
    config = NatsConfig.from_url("nats://u:p@a:4222,b:4223", service="s")
    assert config.servers() == ["nats://u:p@a:4222", "nats://u:p@b:4223"]


def test_not_a_nats_url() -> None:
    with pytest.raises(InvalidBackendConfig, match="not a nats:// URL"):
        NatsConfig.from_url("redis://x", service="s")


def test_start_positions_and_consumer_limits() -> None:
    assert start_policy("earliest") == {"deliver_policy": api.DeliverPolicy.ALL}
    assert start_policy("latest") == {"deliver_policy": api.DeliverPolicy.NEW}
    assert start_policy(0)["opt_start_seq"] == 1  # stream sequences start at 1
    config = consumer_config("shop.billing", 5, 0.5, 3, NatsConfig())
    assert config.durable_name == "shop-billing"
    assert config.max_deliver == 4, "one extra delivery, which the adapter dead-letters"
    assert consumer_config("g", "latest", 1.0, None, NatsConfig()).max_deliver == -1
