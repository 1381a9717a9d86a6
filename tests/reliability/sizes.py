"""How big each scenario runs: ``CI`` inside ``make test``, ``FULL`` for ``make reliability``.

One table, so the docs can say both sizes and the tests and the runner
cannot drift apart.
"""

from __future__ import annotations

from typing import Final

CI: Final[dict[str, int]] = {
    "late_ack": 5,
    "kill9": 8,
    "group_faults": 3,
    "power_loss": 12,
    "corruption_tail": 1,
    "corruption_flips": 300,
    "disk_full": 3,
    "disk_full_broker": 5,
    "eio": 3,
    "eio_broker": 4,
    "clock_jumps": 6,
    "fuzz_codec": 20_000,
    "fuzz_socket": 2_000,
    "exhaustion": 20,
    "soak": 0,  # minutes: the full run only
    "nats_failover": 1,  # node kills
}

FULL: Final[dict[str, int]] = {
    "late_ack": 100,
    "kill9": 100,
    "group_faults": 20,
    "power_loss": 200,
    "corruption_tail": 1,
    "corruption_flips": 10_000,
    "disk_full": 50,
    "disk_full_broker": 50,
    "eio": 50,
    "eio_broker": 50,
    "clock_jumps": 100,
    "fuzz_codec": 1_000_000,
    "fuzz_socket": 100_000,
    "exhaustion": 200,
    "soak": 30,
    "nats_failover": 3,
}
