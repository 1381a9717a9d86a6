"""``tidings replay MODULE:APP --group G --topic T --from earliest|TIME``: rebuild a service from history.

The App is loaded as ``tidings run`` loads it; its subscription on ``TOPIC`` is rewritten to run in
group ``G`` starting at ``--from`` (its other subscriptions are not run, so a replay moves no other
group). A group that already has a position on the topic is moved there with ``Admin.reset_group``.
The replay stops, by default, once the group has settled everything the topic held when it started
(the head at start: every partition's committed offset reached its end offset then); ``--live`` keeps
it running after that, until SIGINT or SIGTERM.

Progress is counted by the App's observer (the hook ``TestApp`` uses): events of the topic below the
head that were acked or dead-lettered (a retried event counts once, when it is finally settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tidings.app import Ack, App, DeadLetter, Decision, event_info
from tidings.app.application import AppState
from tidings.app.handlers import Observer
from tidings.backends.base import Admin, Delivery, StartPosition, open_backend
from tidings.cli.run_command import load_app
from tidings.errors import InvalidArgument, NotSupported

__all__ = ["parse_start", "replay", "replay_command"]

log = logging.getLogger("tidings.cli.replay")

ProgressFn = Callable[[int, int], None]
"""Called with (events done, total) as the replay advances."""

POLL_INTERVAL = 0.1


class _Counter:
    """An ``Observer`` counting the final settlements of ``topic``'s events below the head, in ``group``."""

    def __init__(self, group: str, topic: str, head: dict[int, int], inner: Observer | None) -> None:
        self.group = group
        self.topic = topic
        self.head = head
        self.inner = inner
        self.seen: set[tuple[int, int]] = set()
        self.live = 0

    @property
    def done(self) -> int:
        return len(self.seen)

    def on_published(
        self, topic: str, partition: int, offset: int, data: bytes, headers: dict[str, bytes]
    ) -> None:
        if self.inner is not None:
            self.inner.on_published(topic, partition, offset, data, headers)

    def on_settled(self, group: str, delivery: Delivery, decision: Decision) -> None:
        if group == self.group and delivery.topic == self.topic and isinstance(decision, Ack | DeadLetter):
            if delivery.offset < self.head.get(delivery.partition, 0):
                self.seen.add((delivery.partition, delivery.offset))
            else:
                self.live += 1
        if self.inner is not None:
            self.inner.on_settled(group, delivery, decision)


def parse_start(text: str) -> StartPosition:
    """``earliest`` or an ISO-8601 time (a time without a zone is UTC); ``InvalidArgument`` otherwise."""
    if text == "earliest":
        return "earliest"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"--from is 'earliest' or an ISO-8601 time, not {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _rewrite(app: App, group: str, topic: str, start: StartPosition) -> None:
    """Keep only ``app``'s subscription on ``topic``, moved to ``group`` starting at ``start``."""
    if app.state is not AppState.NEW:
        raise InvalidArgument(f"app {app.name} has already started: replay needs a fresh App")
    on_topic = [s for s in app.specs if not s.respond and event_info(s.event_type).topic == topic]
    if not on_topic:
        topics = sorted({event_info(s.event_type).topic for s in app.specs if not s.respond})
        raise InvalidArgument(f"app {app.name} subscribes to nothing on {topic!r} (its topics: {topics})")
    if len(on_topic) > 1:
        names = ", ".join(s.name for s in on_topic)
        raise InvalidArgument(
            f"app {app.name} has several handlers on {topic!r} ({names}): cannot replay them as one group"
        )
    for spec in app.specs:
        if spec not in on_topic:
            log.info("tidings replay: not running %s (%s) during the replay", spec.name, spec.group)
    app.specs[:] = [dataclasses.replace(on_topic[0], group=group, start=start)]


async def replay(
    app: App,
    group: str,
    topic: str,
    start: StartPosition,
    *,
    until_head: bool = True,
    progress: ProgressFn | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Replay ``topic`` from ``start`` through ``app``'s handler in ``group``; the number of events handled.

    That number counts the events of the history (below the head at the start) and, after them, the
    live ones handled before the replay stopped (with ``until_head=False``, once ``stop`` is set).

    Returns once ``group`` settled every event the topic held at the start (``until_head``), or when
    ``stop`` is set. An existing group is moved to ``start`` first (``Admin.reset_group``).
    """
    stop = stop or asyncio.Event()
    _rewrite(app, group, topic, start)
    admin = open_backend(app.broker_url, service=app.name, **app.backend_options)
    if not isinstance(admin, Admin):
        raise NotSupported(
            f"the backend of {admin.url} has no admin API: replay needs it", capability="admin"
        )
    counter: _Counter | None = None
    async with admin:
        head = await admin.topic_end_offsets(topic)
        if await admin.group_offsets(group, topic):
            log.info("tidings replay: group %s exists: moving it to %s on %s", group, start, topic)
            await admin.reset_group(group, topic, start)
        counter = _Counter(group, topic, head, app.observer)
        app.observer = counter
        try:
            await app.start()
            committed = await admin.group_offsets(group, topic)
            floor = {p: committed.get(p, 0 if start == "earliest" else end) for p, end in head.items()}
            ahead = sum(max(0, end - min(floor[p], end)) for p, end in head.items())
            while not stop.is_set():
                # the events after the group's position when it started, and those it had settled by then
                total = max(ahead + sum(offset < floor[p] for p, offset in counter.seen), counter.done)
                if progress is not None:
                    progress(counter.done, total)
                if until_head:
                    committed = await admin.group_offsets(group, topic)
                    if all(committed.get(p, 0) >= end for p, end in head.items() if end > 0):
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_INTERVAL)
        finally:
            await app.stop()
        if progress is not None:
            progress(counter.done, max(total, counter.done))
    return counter.done + counter.live


def replay_command(
    app_ref: Annotated[
        str, typer.Argument(metavar="MODULE:APP", help="The App (or a factory) to replay into.")
    ],
    *,
    group: Annotated[str, typer.Option("--group", help="The consumer group the replay runs in.")],
    topic: Annotated[str, typer.Option("--topic", help="The topic to replay.")],
    from_: Annotated[str, typer.Option("--from", help="'earliest' or an ISO-8601 time (UTC if no zone).")],
    until_head: Annotated[
        bool,
        typer.Option(
            "--until-head/--live", help="Stop at the head at start (default), or keep running live."
        ),
    ] = True,
    broker: Annotated[str | None, typer.Option("--broker", help="Broker URL (default: the App's).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level: debug, info, warning, error.")] = "warning",
) -> None:
    """Rebuild a service from history: replay TOPIC from --from through the App's handler in --group."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = parse_start(from_)
    if broker is not None:
        os.environ["TIDINGS_URL"] = broker  # a factory reads it when called
    app = load_app(app_ref)
    if broker is not None:
        app.broker_url = broker
    done = asyncio.run(_run(app, group, topic, start, until_head=until_head))
    if done < 0:
        sys.exit(130)


async def _run(app: App, group: str, topic: str, start: StartPosition, *, until_head: bool) -> int:
    """The command around ``replay``: a progress bar on stderr, SIGINT/SIGTERM stop; -1 when stopped early."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    console = Console(stderr=True)
    began = time.monotonic()
    bar = Progress(
        TextColumn(f"replay {topic} -> {group}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )
    task = bar.add_task("replay", total=None, rate="")

    def show(done: int, total: int) -> None:
        if not bar.live.is_started:  # shown once the replay runs: an error before is one line alone
            bar.start()
        elapsed = max(time.monotonic() - began, 1e-6)
        bar.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f} ev/s")

    try:
        done = await replay(app, group, topic, start, until_head=until_head, progress=show, stop=stop)
    finally:
        bar.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)
    elapsed = time.monotonic() - began
    console.print(f"replayed {done} event(s) of {topic} into {group} in {elapsed:.1f}s", highlight=False)
    if until_head and stop.is_set():
        console.print("stopped before the head", highlight=False)
        return -1
    return done
