"""The puller against a real nats-server: stopping it never loses a message that was on its way.

A message the server delivered to the puller's inbox is either accepted or returned by ``stop``
(to be handed back); one dropped in between would stay unacknowledged until its ack deadline and
come back behind newer messages, out of order, and an inbox drain waiting for it would never end.
"""

from __future__ import annotations

import asyncio
import random

import nats
from nats.aio.msg import Msg
from nats.js import api

from tidings.backends.nats.config import NatsConfig
from tidings.backends.nats.pulling import Puller

STREAM = "pulling"
CONSUMER = "stopper"
ROUNDS = 40
PER_ROUND = 200
PAYLOAD = 2048
"""Large enough that a round arrives over several socket reads, so some of it is still on its way at stop."""


async def test_stopping_mid_flow_returns_every_message_on_its_way(nats_server) -> None:
    """Stopped at varied moments while a batch streams in: accepted + returned = delivered, every round."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await js.add_stream(name=STREAM, subjects=[f"{STREAM}.>"], storage=api.StorageType.MEMORY)
        await js.add_consumer(
            STREAM, durable_name=CONSUMER, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=60, max_ack_pending=-1
        )
        connected = asyncio.Event()
        connected.set()
        chance = random.Random(8)
        rounds_with_leftovers = 0
        taken: list[int] = []  # stream sequences, in the order the rounds accepted and returned them
        for round_ in range(ROUNDS):
            for n in range(PER_ROUND):
                await js.publish(f"{STREAM}.x", f"{round_}-{n}-".encode().ljust(PAYLOAD, b"."))
            accepted: list[Msg] = []
            stopping: list[asyncio.Task[list[Msg]]] = []
            stop_after = chance.randrange(1, PER_ROUND // 4)
            yields = chance.randrange(0, 8)

            def accept(puller: Puller, msg: Msg, stop_after=stop_after, yields=yields) -> None:
                accepted.append(msg)  # noqa: B023 - this round's list
                if len(accepted) == stop_after and not stopping:  # noqa: B023
                    stopping.append(asyncio.create_task(stop_later(puller, yields)))  # noqa: B023

            puller = Puller(
                nc,
                STREAM,
                CONSUMER,
                NatsConfig(),
                connected=connected,
                room=lambda _: PER_ROUND,
                accept=accept,
                failed=lambda exc: None,
                consumer_exists=_always,
            )
            await puller.start()
            while not stopping:
                await asyncio.sleep(0.001)
            returned = await asyncio.wait_for(stopping[0], 10)  # a stop that hangs fails here
            rounds_with_leftovers += bool(returned)
            seen = [m.data for m in accepted + returned]
            assert len(seen) == len(set(seen)), f"round {round_}: a message both accepted and returned"
            for msg in accepted + returned:
                await msg.ack_sync()
            info = await js.consumer_info(STREAM, CONSUMER)
            assert info.num_ack_pending == 0, (
                f"round {round_} (stopped after {stop_after} + {yields} yields): {info.num_ack_pending}"
                f" delivered message(s) neither accepted nor returned by stop"
            )
            taken.extend(msg.metadata.sequence.stream for msg in accepted + returned)
        # What a stop left unread went to the next puller: the rounds together read the stream in order,
        # no gap, nothing twice.
        assert taken == list(range(1, len(taken) + 1))
        # Some stops must have come while messages were still on their way, or the drain went untested.
        assert rounds_with_leftovers > 0
    finally:
        await nc.close()


async def stop_later(puller: Puller, yields: int) -> list[Msg]:
    for _ in range(yields):
        await asyncio.sleep(0)
    return await puller.stop()


async def _always(consumer: str) -> bool:
    return True
