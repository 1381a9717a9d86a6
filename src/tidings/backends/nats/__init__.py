"""``nats://``: Tidings on NATS JetStream, through nats-py.

``open_backend("nats://host:4222", service="billing")`` (several servers of a
cluster: ``nats://a:4222,b:4222``); options are the fields of ``NatsConfig``.
What maps to what:

* **Topic -> stream.** One stream per topic, named ``TIDINGS_`` plus the
  escaped topic (``orders.placed`` -> ``TIDINGS_orders-placed``; see
  ``naming``), file storage, ``replicas`` replicas (1; use 3 on a cluster),
  limits retention, created on first use with ``partitions`` partitions or
  by ``create_topic``.
* **Partition -> subject.** Partition ``p`` of topic ``t`` is the subject
  ``tidings.<t>.p<p>``; a key goes to ``partition_for_key(key, n)``, the
  partition the Tidings broker would choose; no key: round robin.
* **Offset -> stream sequence.** ``Receipt.offset`` and ``Delivery.offset``
  are the stream's sequence, shared by all partitions of the topic (offsets
  of one partition grow but are not consecutive); ``start=<offset>``
  begins there on every partition.
* **Group -> durable pull consumers** on the stream, explicit acks,
  ``ack_wait`` = ``ack_deadline``, ``max_deliver`` = ``max_deliveries`` + 1
  (``consumers``). A ``shared`` group has one consumer, and JetStream gives
  each message to whichever member pulls. A ``partitioned`` group has one
  consumer per partition (``<group>_p<N>``), pulled only by the member that
  holds the partition's lock (``ownership``: heartbeats on core NATS, locks
  in the KV bucket ``TIDINGS_LOCKS``), so each key is read by one member at
  a time, in stream order (``ordered_per_key``).
* **Settling** is acknowledged by the server (``delivery``); ``nack(delay)``
  is ``-NAK`` with a delay; dead letters are written by the adapter
  (``subscription``) to ``<topic>.dlq.<group>`` with the ``DLQ_*`` headers,
  then ``+TERM``.
* **Requests** go over core NATS to ``tidings-request.<topic>`` (never
  stored); every subscription made with ``requests=True`` joins one queue
  group there, so each request reaches exactly one of them; none:
  ``NoResponders`` at once (NATS's no-responders status).
* **Message ids** are ``Nats-Msg-Id``: the stream's duplicate window
  (``duplicate_window``, 2 minutes) deduplicates them (``dedupe_by_id``),
  and publishes without one get a generated id so the adapter's own retries
  after a lost connection are stored once (``idempotent_publish``).
* **Durability.** At connect the adapter checks that the server fsyncs every
  write (``sync_interval: always``) and warns loudly when it does not, or
  when it cannot tell (``durability``).
* **Errors** from nats-py are translated once, in ``errors``.

* **Patterns** (``shop.*``, ``shop.>``): a subscription per matching topic,
  merged by append time; topics created later join as JetStream announces
  their streams (``patterns``).

It declares every capability of the contract. Modules: ``config``,
``naming`` and ``codec`` (pure), ``streams``, ``publishing``, ``consumers``,
``pulling``, ``ownership``, ``subscription``, ``patterns``, ``delivery``,
``durability``, ``errors``, ``backend``.
"""

from __future__ import annotations

from typing import Any

from tidings.backends.nats.backend import NatsBackend
from tidings.backends.nats.capabilities import CAPABILITIES
from tidings.backends.nats.config import NatsConfig

__all__ = ["CAPABILITIES", "NatsBackend", "NatsConfig", "from_url"]


def from_url(url: str, *, service: str, **options: Any) -> NatsBackend:
    """The opener ``open_backend`` uses for ``nats://``: checks the URL and options now, connects at open."""
    return NatsBackend(NatsConfig.from_url(url, service=service, **options))
