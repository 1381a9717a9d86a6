"""EIO under a broker serving real sockets: refused, stopped, never retried (scenario 6)."""

from __future__ import annotations

from tests.reliability import eio_broker
from tests.reliability.sizes import CI


async def test_eio_under_the_broker_acks_nothing_after_it_and_retries_no_fsync(tmp_path):
    figures = await eio_broker.run(CI["eio_broker"], tmp_path)
    assert figures["acks_after_failure"] == 0, figures
    assert figures["first_refusals"] == ["storage_failed"], figures
    assert figures["fsyncs_after_failure"] == 0, figures
    assert figures["acked_unreadable"] == 0, figures
