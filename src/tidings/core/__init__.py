"""The broker's logic, with no transport: topics, partitioning, idempotent producers,
consumer groups, request/reply routing, administration.

Synchronous and driven by ``tidings.server`` (which owns sockets, timers and the
fsync threads). Time comes from an injected clock, so every rule can be tested
without sleeping. The core speaks in ``tidings.protocol``'s value types
(``values``, ``ranges``, ``admin``, ``names``) but never sees frames' bytes.
"""
