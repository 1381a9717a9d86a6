"""The pure parts of the redis:// backend: naming, ids, encoding, config, ownership, retries, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from redis import exceptions as redis_errors

from tidings.backends import open_backend
from tidings.backends.redis import RedisConfig
from tidings.backends.redis.codec import (
    Answer,
    Entry,
    Request,
    decode_answer,
    decode_request,
    encode_answer,
    encode_headers,
    encode_request,
    entry_fields,
)
from tidings.backends.redis.durability import Durability
from tidings.backends.redis.errors import retryable, translate
from tidings.backends.redis.keys import (
    MAX_SEQ,
    Keys,
    StreamId,
    meta_pattern,
    reply_channel,
    time_start_id,
    topic_of_meta,
    topics_channel,
)
from tidings.backends.redis.ownership import Ownership
from tidings.backends.redis.retry import MAX_BACKOFF, backoff
from tidings.backends.redis.tasks import stop
from tidings.errors import (
    BrokerError,
    ConnectFailed,
    ConnectionLost,
    InvalidBackendConfig,
    NotAuthorized,
    PublishError,
)


class TestStreamIds:
    def test_an_id_is_append_ms_and_offset(self) -> None:
        entry = StreamId.parse(b"1700000000123-42")
        assert (entry.ms, entry.offset) == (1700000000123, 42)
        assert str(entry) == "1700000000123-42"
        assert entry.append_time == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)

    def test_a_time_start_is_the_last_id_of_the_millisecond_before(self) -> None:
        moment = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
        assert time_start_id(moment) == f"1700000000122-{MAX_SEQ}"

    def test_a_partial_millisecond_starts_at_the_next_one(self) -> None:
        moment = datetime(2023, 11, 14, 22, 13, 20, 123400, tzinfo=UTC)
        assert time_start_id(moment) == f"1700000000123-{MAX_SEQ}"

    def test_the_epoch_starts_at_the_beginning(self) -> None:
        assert time_start_id(datetime(1970, 1, 1, tzinfo=UTC)) == "0-0"


class TestKeys:
    def test_every_key_of_a_topic_shares_its_hash_tag(self) -> None:
        keys = Keys("tidings:", "shop.orders")
        names = [
            keys.meta,
            keys.stream(3),
            keys.msg_id("m-1"),
            keys.retry_id("abc"),
            keys.delay("billing", 3),
            keys.members("billing"),
            keys.lease("billing", 3),
            keys.requests,
        ]
        assert all(name.startswith("tidings:{shop.orders}") for name in names)
        assert len(set(names)) == len(names)
        assert keys.stream(3) == "tidings:{shop.orders}:3"

    def test_reply_channels_are_per_backend(self) -> None:
        assert reply_channel("app:", "b1") == "app:reply:b1"


class TestCodec:
    def test_an_entry_round_trips(self) -> None:
        sent = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        headers = encode_headers({"text": "vé", "binary": b"\x00\xff", "empty": ""})
        fields = entry_fields(b"\x00data", b"key", headers, "m-1", int(sent.timestamp() * 1000))
        entry = Entry.decode(fields)
        assert entry == Entry(b"\x00data", b"key", headers, "m-1", sent)
        assert Entry.decode(entry.fields()) == entry

    def test_absent_fields_mean_none(self) -> None:
        fields = entry_fields(b"", None, {}, None, 0)
        assert set(fields) == {b"d", b"t"}
        entry = Entry.decode(fields)
        assert (entry.key, dict(entry.headers), entry.msg_id) == (None, {}, None)

    def test_requests_and_answers_round_trip(self) -> None:
        request = Request("r1", "tidings:reply:b", 123, b"data", None, {"h": b"v"}, 100)
        assert decode_request(encode_request(request)) == request
        answer = Answer("r1", b"pong", {})
        assert decode_answer(encode_answer(answer)) == answer


class TestConfig:
    def test_options_are_fields(self) -> None:
        backend = open_backend("redis://127.0.0.1:1/0", service="s", prefix="app:", retention=10)
        assert backend.service == "s"
        assert backend.config.prefix == "app:"  # type: ignore[attr-defined]

    def test_an_unknown_option_names_the_known_ones(self) -> None:
        with pytest.raises(InvalidBackendConfig, match=r"unknown option.*retension.*options: .*retention"):
            open_backend("redis://127.0.0.1:1/0", service="s", retension=10)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"retention": 0}, "retention"),
            ({"prefix": ""}, "prefix"),
            ({"prefix": "a{b}"}, "prefix"),
            ({"dedupe_window": 0}, "dedupe_window"),
            ({"lease_ttl": 1.0, "rebalance_interval": 0.6}, "half of lease_ttl"),
        ],
    )
    def test_bad_values_are_refused_with_their_name(self, options: dict[str, object], message: str) -> None:
        with pytest.raises(InvalidBackendConfig, match=message):
            RedisConfig.from_url("redis://127.0.0.1:1/0", service="s", **options)

    def test_not_a_redis_url(self) -> None:
        with pytest.raises(InvalidBackendConfig, match="not a redis URL"):
            RedisConfig(url="http://127.0.0.1/")

    def test_the_password_is_never_shown(self) -> None:
        backend = open_backend("redis://user:secret@127.0.0.1:1/0", service="s")
        assert "secret" not in backend.url and "secret" not in repr(backend)


class TestDurability:
    @pytest.mark.parametrize(
        ("appendonly", "appendfsync", "durable"),
        [("yes", "always", True), ("yes", "everysec", False), ("no", "always", False), (None, None, False)],
    )
    def test_only_fsync_always_makes_acks_durable(
        self, appendonly: str | None, appendfsync: str | None, durable: bool
    ) -> None:
        assert Durability(appendonly, appendfsync).acks_durable is durable


class TestOwnership:
    def test_taking_reading_draining_releasing(self) -> None:
        ownership = Ownership(partitions=4)
        taken, dropped = ownership.step(owned=[0, 1, 2, 3], assigned=[0, 1, 2, 3], reads_started=0)
        assert (taken, dropped) == ({0, 1, 2, 3}, set())
        ownership.started(taken)
        assert ownership.settled_in

        # a second member joined: 1 and 3 are assigned to it; a read is running (started 5, done 4)
        taken, dropped = ownership.step(owned=[0, 1, 2, 3], assigned=[0, 2], reads_started=5)
        assert (taken, dropped) == (set(), {1, 3})
        assert ownership.reading == {0, 2}
        assert ownership.releasable(reads_done=4, unsettled=[]) == "0000"  # the running read may bring some
        assert ownership.releasable(reads_done=5, unsettled=[3]) == "0100"  # 3 still has a delivery out
        taken, dropped = ownership.step(owned=[0, 2, 3], assigned=[0, 2], reads_started=6)  # 1 released
        assert (taken, dropped) == (set(), {1})
        assert set(ownership.draining) == {3}

    def test_a_lost_lease_stops_reading(self) -> None:
        ownership = Ownership(partitions=2)
        ownership.started(ownership.step(owned=[0, 1], assigned=[0, 1], reads_started=0)[0])
        taken, dropped = ownership.step(owned=[0], assigned=[0, 1], reads_started=1)
        assert (taken, dropped) == (set(), {1})
        assert ownership.reading == {0} and not ownership.settled_in

    def test_a_draining_partition_assigned_back_is_read_again(self) -> None:
        ownership = Ownership(partitions=2)
        ownership.started(ownership.step(owned=[0, 1], assigned=[0, 1], reads_started=0)[0])
        ownership.step(owned=[0, 1], assigned=[0], reads_started=1)
        taken, _ = ownership.step(owned=[0, 1], assigned=[0, 1], reads_started=2)
        assert taken == {1} and not ownership.draining


def test_backoff_doubles_up_to_its_cap() -> None:
    waits = [backoff(attempt) for attempt in range(1, 12)]
    assert waits == sorted(waits) and waits[0] < waits[1] and waits[-1] == MAX_BACKOFF


class TestErrors:
    URL = "redis://127.0.0.1:1/0"

    @pytest.mark.parametrize(
        ("error", "what", "expected"),
        [
            (redis_errors.ConnectionError("refused"), "reading", ConnectionLost),
            (redis_errors.TimeoutError("slow"), "reading", ConnectionLost),
            (redis_errors.BusyLoadingError("loading"), "reading", ConnectionLost),
            (redis_errors.AuthenticationError("wrong password"), "reading", NotAuthorized),
            (redis_errors.NoPermissionError("NOPERM"), "publish to 't'", NotAuthorized),
            (redis_errors.OutOfMemoryError("OOM"), "publish to 't'", PublishError),
            (redis_errors.ResponseError("ERR odd"), "reading", BrokerError),
        ],
    )
    def test_redis_errors_become_tidings_errors(self, error: Exception, what: str, expected: type) -> None:
        translated = translate(error, what, url=self.URL)
        assert type(translated) is expected
        assert what in str(translated) and self.URL in str(translated)

    def test_connecting_failures_are_connect_failed(self) -> None:
        assert isinstance(
            translate(redis_errors.ConnectionError("x"), "c", url=self.URL, connecting=True), ConnectFailed
        )

    def test_out_of_memory_says_so(self) -> None:
        error = translate(redis_errors.OutOfMemoryError("OOM"), "publish to 't'", url=self.URL)
        assert isinstance(error, PublishError) and error.reason == "out_of_memory"

    def test_only_a_lost_server_is_retried(self) -> None:
        assert retryable(redis_errors.ConnectionError("x"))
        assert not retryable(redis_errors.AuthenticationError("x"))
        assert not retryable(redis_errors.ResponseError("x"))


def test_a_time_a_day_ago_is_in_the_past() -> None:
    assert time_start_id(datetime.now(UTC) - timedelta(days=1)).endswith(str(MAX_SEQ))


class TestTopicDiscovery:
    def test_meta_hashes_are_found_by_a_glob_with_the_prefix_escaped(self) -> None:
        assert meta_pattern("tidings:") == "tidings:{*}"
        assert meta_pattern("a*b?[c]:") == "a\\*b\\?\\[c\\]:{*}"

    def test_only_a_meta_hash_names_a_topic(self) -> None:
        assert topic_of_meta("tidings:", "tidings:{shop.orders}") == "shop.orders"
        assert topic_of_meta("tidings:", "tidings:{shop.orders}:0") is None
        assert topic_of_meta("tidings:", "other:{shop.orders}") is None
        assert topics_channel("tidings:") == "tidings:topics"


async def test_stop_ends_a_task_that_swallowed_its_first_cancellation() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # as redis-py 8.1 sometimes does for the task awaiting it
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            swallowed.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop([task, None]), 5.0)
    assert swallowed.is_set() and task.cancelled()
