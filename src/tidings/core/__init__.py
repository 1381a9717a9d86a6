"""The broker's logic, with no transport: topics, partitioning, idempotent producers,
consumer groups, request/reply routing, administration.

Synchronous and driven by ``tidings.server`` (which owns sockets, timers and the
fsync threads). Time comes from an injected clock, so every rule can be tested
without sleeping. The core speaks in ``tidings.protocol``'s value types
(``frames``, ``values``, ``ranges``, ``admin``, ``names``) but never sees frames' bytes.

Modules, one job each:

* ``broker``: ``BrokerCore``, the facade the server calls (frames in, outbox out)
* ``topics``, ``topic_config``, ``datadir``: the topic registry over a data directory
* ``partitioner``: the partition of a batch the producer did not place
* ``produce``: checking, deduplicating and appending the batches of a Produce
* ``producers``, ``producer_state``: idempotent producers and how their state survives restarts
* ``dead_letters``: the dead-letter copy of a record
* ``requests``: request/reply routing
* ``admin``: AdminRequest bodies
* ``groups``: the consumer-group engine; ``ports``: its seams to the rest
"""
