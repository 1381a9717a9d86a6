"""``Context``: what a handler may know and do besides reading its event.

A handler receives ``(event, ctx)``. ``ctx`` is made per delivery by the
handler runner (``tidings.app.handlers``) and gives:

* the delivery's metadata (``topic``, ``partition``, ``offset``,
  ``delivery_count``, ``timestamp``, ``append_time``, ``event_id``, ``envelope``),
  so a handler can log where an event came from without touching the backend;
* ``publish(event, key=None)``: with a store configured, into the outbox of the
  handler's own transaction (published by the relay after the commit, rolled
  back with the handler's writes if it raises); without one, straight to the
  backend. Events published through ``ctx`` are what make a handler's effects
  visible, so the same call must mean "exactly when my transaction commits"
  whenever the service has a database;
* ``request(event, reply_type, timeout=...)``: ask another service (never through the
  outbox: a request needs its answer now);
* ``now()``: the event's time when history is replayed, the wall clock live
  (``tidings.app.clock``), so replays rebuild the same tables;
* ``db``: the store transaction's SQLAlchemy session (``AttributeError``-free:
  ``StoreError`` if no store was configured, which names the fix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tidings.app.clock import ReplayPolicy, event_now, is_replay
from tidings.app.codec import Envelope, encode
from tidings.app.events import event_info
from tidings.app.tracing import producer_span
from tidings.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tidings.app.store import Transaction
    from tidings.backends.base import Delivery

__all__ = ["Context", "PublishFn", "RequestFn"]

R = TypeVar("R")

PublishFn = Callable[[Any, "str | bytes | None"], Awaitable[None]]
"""``publish(event, key)``: the App's direct publish (encode, then ``backend.publish``)."""
RequestFn = Callable[..., Awaitable[Any]]
"""``request(event, reply_type, *, timeout)``: the App's request."""


@dataclass(slots=True)
class Context:
    """One delivery's context; see the module docstring. Made by the handler runner, not by users."""

    delivery: Delivery
    envelope: Envelope
    group: str
    subscribed_at: datetime
    source: str
    _publish: PublishFn
    _request: RequestFn
    replay: ReplayPolicy = field(default_factory=ReplayPolicy)
    transaction: Transaction | None = None

    def __repr__(self) -> str:
        return (
            f"<Context {self.topic}[{self.partition}]@{self.offset} group={self.group} "
            f"event={self.event_id} delivery={self.delivery_count}>"
        )

    # -- where the event came from --------------------------------------------------------

    @property
    def topic(self) -> str:
        return self.delivery.topic

    @property
    def partition(self) -> int:
        return self.delivery.partition

    @property
    def offset(self) -> int:
        return self.delivery.offset

    @property
    def delivery_count(self) -> int:
        return self.delivery.delivery_count

    @property
    def timestamp(self) -> datetime:
        return self.delivery.timestamp

    @property
    def append_time(self) -> datetime | None:
        return self.delivery.append_time

    @property
    def event_id(self) -> str:
        return self.envelope.id

    @property
    def event_time(self) -> datetime | None:
        return self.envelope.time

    # -- time -----------------------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        """Whether this delivery replays history (stored before the subscription started)."""
        return is_replay(
            subscribed_at=self.subscribed_at,
            appended_at=self.delivery.append_time,
            event_time=self.envelope.time,
            policy=self.replay,
        )

    def now(self) -> datetime:
        """The event's time during a replay, the wall clock (UTC) live."""
        return event_now(
            wall=datetime.now(UTC),
            replaying=self.replaying,
            event_time=self.envelope.time,
            appended_at=self.delivery.append_time,
        )

    # -- the service's database -------------------------------------------------------------

    @property
    def db(self) -> AsyncSession:
        """The handler's transaction's session: commit and rollback are the runner's, not the handler's."""
        if self.transaction is None:
            raise StoreError("ctx.db needs a store: App(..., store='sqlite:///service.db')")
        return self.transaction.session

    # -- effects ----------------------------------------------------------------------------

    async def publish(self, event: Any, key: str | bytes | None = None) -> None:
        """Publish ``event``: into the transaction's outbox with a store, else straight away."""
        if self.transaction is None:
            await self._publish(event, key)
            return
        topic = event_info(event).topic
        with producer_span(topic, self.source, operation="create") as trace_headers:
            encoded = encode(event, source=self.source, headers=trace_headers)
            await self.transaction.enqueue(topic, encoded.data, key=key, headers=encoded.headers)

    async def request(self, event: Any, reply_type: type[R], *, timeout: float = 5.0) -> R:
        """Ask the responder of ``event``'s topic and return its reply as a ``reply_type``."""
        reply: R = await self._request(event, reply_type, timeout=timeout)
        return reply
