"""``redis://``: Tidings on Redis Streams, through redis-py's asyncio client.

``open_backend("redis://host:port/db", service=..., **options)``; options are
``RedisConfig`` fields. The mapping, in short (each module's docstring has
the detail, ``docs/backends.md`` (Redis Streams) the whole story):

* **Topics and partitions** (``keys``, ``publisher``): partition ``p`` of
  topic ``T`` is the stream ``tidings:{T}:<p>``; the partition count is in
  the hash ``tidings:{T}`` (auto-created with 1 on first use). Keys go to
  ``records.partition_for_key``'s partition, as on the broker.
* **Offsets** (``keys``, ``scripts.PUBLISH``): the adapter picks every
  entry id itself, ``<ms>-<offset>``: the millisecond part is the append
  time, the sequence part the partition offset. Replay by time is native
  (``XGROUP CREATE`` at ``<ms-1>-<max>``); replay by offset finds the id by
  a binary search over the millisecond part (``scripts.START_ID``). The cost:
  each append reads the stream's last id in the script (O(1)).
* **Groups** (``groups``, ``subscription``): one Redis consumer group per
  Tidings group on each partition stream, created ``MKSTREAM`` at the start
  position only when missing. ``shared`` reads every partition; ``partitioned``
  leases each partition to one member (``ownership``).
* **Redelivery** (``scripts.RECLAIM``): ``XPENDING IDLE`` + ``XCLAIM``
  after ``ack_deadline``; ``delivery_count`` is the PEL's times-delivered.
  ``nack(delay)`` keeps the entry pending with a due time in a zset.
  Dead letters are written by the adapter (``native_dead_letters``):
  a copy with the ``DLQ_*`` headers on ``<topic>.dlq.<group>``, then ``XACK``.
* **Publishing** (``publisher``): one script per message appends and
  remembers its id (``dedupe_by_id``, ``idempotent_publish``); retries
  wait out a restarting server for ``reconnect_timeout``.
* **Requests** (``requests``): a list and a pub/sub wake-up per topic,
  ``NoResponders`` when ``PUBLISH`` reaches nobody.
* **Patterns** (``patterns``): new topics are announced on a channel when
  created and found by a periodic ``SCAN``; one topic subscription each.
* **Durability** (``durability``): whatever the server's AOF settings give;
  read at ``open`` and warned about unless ``appendonly yes``/``appendfsync always``.
* **Errors** (``errors``): redis-py's exceptions become ``tidings.errors`` there only.
"""

from __future__ import annotations

from typing import Any

from tidings.backends.redis.backend import CAPABILITIES, RedisBackend
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.durability import Durability

__all__ = ["CAPABILITIES", "Durability", "RedisBackend", "RedisConfig", "from_url"]


def from_url(url: str, *, service: str, **options: Any) -> RedisBackend:
    """The opener ``open_backend`` uses for ``redis://``."""
    return RedisBackend(RedisConfig.from_url(url, service=service, **options))
