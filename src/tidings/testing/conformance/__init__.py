"""The backend conformance suite: one set of scenarios that every backend must pass.

A scenario is an async function of a ``Harness`` that checks one promise of
the backend contract (``tidings.backends.base``), registered with the
capabilities it needs. It runs wherever the backend declares them, and is
skipped, with the capability's meaning and the backend's reason, only where
the backend declares one missing. Every backend passes everything it declares.

Scenarios (in ``SCENARIOS`` order):

* ``basic``: publish/subscribe round trip (key, headers, bytes, metadata,
  start "latest"); publish_batch; fan-out across groups; competing consumers
  (shared and partitioned); ordering per key.
* ``redelivery``: ack deadline; nack with delay; max deliveries (stop, and
  the dead-letter topic with its headers); term (final, and dead-lettered).
* ``replay``: from earliest; a returning group resumes; from an offset; from a time.
* ``requests``: request/reply; timeout -> ``RequestTimeout``; no responders
  -> ``NoResponders`` at once.
* ``resilience``: dedupe by msg_id; reconnect after a server restart;
  exactly-once publishing across a crash; topic patterns.
* ``framework``: ``tidings.App`` on the backend: retries with backoff, dead
  letters after the last retry and for invalid events, the inbox applying a
  duplicate once, per-key order under concurrency, typed request/reply.

How a backend runs it: its test file provides a ``BackendFactory`` (how to
make a backend on a private server, and how to restart that server) and
restates the capabilities it expects; a thin pytest layer
(``tests/conformance/suite.py`` in the Tidings repository, about forty lines)
parametrizes ``run_scenario`` over ``SCENARIOS`` and turns ``skip_reason``
into ``pytest.skip``. The scenarios themselves import no test framework, so
this package ships without pytest.
"""

from tidings.testing.conformance import basic, framework, redelivery, replay, requests, resilience
from tidings.testing.conformance.harness import (
    SCENARIOS,
    BackendFactory,
    ConformanceError,
    Harness,
    Scenario,
    check,
    run_scenario,
    scenario,
)

__all__ = [
    "SCENARIOS",
    "BackendFactory",
    "ConformanceError",
    "Harness",
    "Scenario",
    "basic",
    "check",
    "framework",
    "redelivery",
    "replay",
    "requests",
    "resilience",
    "run_scenario",
    "scenario",
]
