"""The asyncio client SDK: publish, subscribe, request/reply and administration over one connection.

Modules, one job each:

* ``config``: ``ClientConfig`` (every setting, with its default and why), URLs, the backoff policy
* ``transport``: ``TcpTransport`` and the in-memory ``MockTransport`` / ``MockListener`` for tests
* ``connection``: the pump between a transport and the sans-I/O protocol ``Connection``
* ``channel``: how the parts reach the current connection; broker errors into ``tidings.errors``
* ``producer``: placing publishes in partitions, batching, linger
* ``window``: the Produces in flight per partition: order, answers, resends after a reconnect, recovery
* ``batches``: the per-partition state the two share (open, sealed and in-flight batches)
* ``sequencer``: the idempotent producer's id and per-partition sequence numbers (no I/O)
* ``publisher``: ``Publisher``, a handle on one topic with the batch call ``publish_many``
* ``metadata``: topic partition counts for the producer
* ``consumer``: ``Subscription``: deliveries, credits, coalesced acks
* ``message``: ``Message``, ``PublishResult``, encoding of published data
* ``admin``: ``client.admin``: topics and groups
* ``requests``: request/reply: asking, and routing forwarded requests to responders
* ``client``: ``Client`` and ``connect``: lifecycle, routing, reconnects
* ``sync``: ``connect_sync``, the blocking facade for scripts
"""

from tidings.client.admin import Admin
from tidings.client.client import Client, ClientState, connect
from tidings.client.config import ClientConfig, ReconnectPolicy, backoff_delay, parse_url
from tidings.client.consumer import Subscription, SubscriptionState
from tidings.client.message import Message, PublishResult, PublishResults
from tidings.client.publisher import Publisher
from tidings.client.sync import SyncClient, SyncMessage, SyncSubscription, connect_sync
from tidings.client.transport import MockListener, MockTransport, TcpTransport, Transport, TransportFactory

__all__ = [
    "Admin",
    "Client",
    "ClientConfig",
    "ClientState",
    "Message",
    "MockListener",
    "MockTransport",
    "PublishResult",
    "PublishResults",
    "Publisher",
    "ReconnectPolicy",
    "Subscription",
    "SubscriptionState",
    "SyncClient",
    "SyncMessage",
    "SyncSubscription",
    "TcpTransport",
    "Transport",
    "TransportFactory",
    "backoff_delay",
    "connect",
    "connect_sync",
    "parse_url",
]
