"""The shop: five services that know only events, each with its own ``tidings.App`` and SQLite database.

    checkout         places orders: asks payment (request/reply), then publishes OrderPlaced (outbox)
    payment          answers ConfirmPayment: approved when the amount is within the limit
    inventory        OrderPlaced -> a reservation row and a stock level -> StockReserved
    shipping         StockReserved -> a shipment row -> ShipmentCreated
    recommendations  OrderPlaced -> per-customer sku counts (replayable: a v2 rebuilds the same table)

No service imports another: they share ``events`` (the contract) and ``service`` (plumbing) only.
``run.run_shop`` starts them all in one process; each module's ``make_app`` is what a deployment runs.
"""
