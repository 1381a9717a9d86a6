"""What the producer keeps per partition: the open and sealed batches, and the window in flight.

Plain data, shared by ``tidings.client.producer`` (which fills batches) and
``tidings.client.window`` (which sends them and takes the answers), and the
two ways a batch's publishes end: ``fail`` them, or ``retrieve`` an answer
nobody will await.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tidings.client.connection import ClientConnection
from tidings.client.sequencer import Encoded, PartitionKey
from tidings.protocol import Frame
from tidings.records import BatchBuilder

Waiter = tuple["asyncio.Future[Any]", int, int]
"""A future waiting on records of a batch: (future, index of its first record, record count).

A count of 0 marks one ``publish``: its future gets a ``PublishResult``. A run
of ``publish_many`` has its count, and its future gets ``(partition,
offset of its first record)``: one future per run instead of per event.
"""


@dataclass(slots=True)
class PendingBatch:
    """Records on their way into one batch, and the futures waiting on them."""

    builder: BatchBuilder = field(default_factory=BatchBuilder)
    waiters: list[Waiter] = field(default_factory=list)
    encoded: Encoded | None = None
    count: int = 0
    """Records in the batch (``len(builder)``, kept here because ``enqueue`` reads it every call)."""

    def __len__(self) -> int:
        return self.count


@dataclass(slots=True)
class InFlight:
    """One Produce of the partition's window: its batch, and the future of its answer (None: unsent)."""

    batch: PendingBatch
    answer: asyncio.Future[Frame] | None = None


@dataclass(slots=True)
class PartitionQueue:
    topic: str
    partition: int | None
    """None only for the lone Produce that creates a topic (the broker places it)."""
    open: PendingBatch | None = None
    sealed: deque[PendingBatch] = field(default_factory=deque)
    window: deque[InFlight] = field(default_factory=deque)
    """Produces sent (or to send again after a reconnect) and not answered yet, oldest first."""
    task: asyncio.Task[None] | None = None
    """Waits for the window's answers, oldest first, and resends it after a reconnect."""
    linger: asyncio.Handle | None = None
    ready: bool = False
    """The open batch's linger is over: send it as soon as the window has room."""
    recovering: bool = False
    """A batch was refused: send nothing new until the window's answers are in (see the module)."""
    refused: Encoded | None = None
    """The first batch refused since ``recovering`` began: the numbers to give back."""
    retry: list[PendingBatch] = field(default_factory=list)
    """Batches refused only because of that gap, to send again, renumbered."""
    last_appended: Encoded | None = None
    sent_on: ClientConnection | None = None
    """The connection the window was sent on: a new batch may follow it there, not on another."""

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)


def retrieve(answer: asyncio.Future[Frame] | None) -> None:
    """Mark a Produce's answer as seen: a lost connection fails it, and nobody awaits it any more."""
    if answer is None:
        return
    if answer.done():
        if not answer.cancelled():
            answer.exception()
    else:
        answer.add_done_callback(retrieve)


def fail(batches: Iterable[PendingBatch], exc: BaseException) -> None:
    for batch in batches:
        for future, _, _ in batch.waiters:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: a caller that gave up must not cause a warning
