"""The shop's events: the only thing its services share, so each is versioned from the start.

Amounts are integer cents (never floats: totals must compare exactly across services and replays).
Every event carries ``order_id`` so that an observer can follow one order through every service.
"""

from __future__ import annotations

from tidings.app import Event

__all__ = ["ConfirmPayment", "OrderPlaced", "PaymentResult", "ShipmentCreated", "StockReserved"]


class OrderPlaced(Event, topic="orders.placed", version=1, frozen=True):
    """Checkout accepted an order and payment approved it."""

    order_id: str
    customer: str
    sku: str
    qty: int
    total: int
    """Cents."""


class StockReserved(Event, topic="stock.reserved", version=1, frozen=True):
    """Inventory set ``qty`` of ``sku`` aside for the order (``remaining`` is the stock left after it)."""

    order_id: str
    sku: str
    qty: int
    remaining: int


class ShipmentCreated(Event, topic="shipments.created", version=1, frozen=True):
    """Shipping created the order's (single) shipment."""

    order_id: str
    shipment_id: str


class ConfirmPayment(Event, topic="payments.confirm", version=1, frozen=True):
    """A request (checkout -> payment): may this order be charged ``amount`` cents?"""

    order_id: str
    amount: int


class PaymentResult(Event, topic="payments.result", version=1, frozen=True):
    """Payment's reply to ``ConfirmPayment``; never published on its topic, only sent as a reply."""

    order_id: str
    approved: bool
