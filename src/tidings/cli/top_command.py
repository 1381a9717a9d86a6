"""``tidings top``: topics and consumer groups, live, with rates, lag and processing delay.

It reads the broker's ``/api/stream``, the Server-Sent Events the dashboard
draws from (one snapshot a second), so the terminal and the browser show the
same figures and the broker serves one stream per viewer instead of polls.
A group is red when its lag is above ``LAG_LIMIT`` or grew in each of the
last ``GROWING_STEPS`` snapshots (``trouble``, the dashboard's rule). The
stream is read with blocking ``urllib`` (nothing else runs meanwhile); a
lost connection is retried every second, with the last frame left on screen.
``--once`` prints the first snapshot and exits (for scripts and tests).
"""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from typing import Annotated, Final

import msgspec
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tidings.cli.client_options import Url
from tidings.cli.figures import ms_text, rate_text, size_text
from tidings.cli.http_api import HttpApiError, HttpUrl, derive_http_url, get
from tidings.cli.map_command import LAG_LIMIT
from tidings.server.http.models import Snapshot

__all__ = ["GROWING_STEPS", "render", "top", "trouble"]

GROWING_STEPS: Final = 5
HISTORY: Final = 60
RETRY_SECONDS: Final = 1.0

out = Console()
_decode = msgspec.json.Decoder(Snapshot)


def trouble(lags: Sequence[int]) -> list[str]:
    """Why a group with these lag readings (oldest first) is red; empty when it is fine."""
    reasons = []
    if lags and lags[-1] > LAG_LIMIT:
        reasons.append(f"lag above {LAG_LIMIT:,}")
    tail = list(lags[-GROWING_STEPS - 1 :])
    if len(tail) > GROWING_STEPS and all(b > a for a, b in itertools.pairwise(tail)):
        reasons.append("lag growing")
    return reasons


class History:
    """Each group's last lag readings, for the trend column and the "growing" rule."""

    def __init__(self) -> None:
        self.lags: defaultdict[str, deque[int]] = defaultdict(lambda: deque(maxlen=HISTORY))

    def add(self, snapshot: Snapshot) -> None:
        for group in snapshot.groups:
            self.lags[group.group].append(group.lag)


def _trend(lags: Sequence[int]) -> str:
    if len(lags) < 2 or lags[-1] == lags[-2]:
        return ""
    return f" ↑{lags[-1] - lags[-2]:,}" if lags[-1] > lags[-2] else f" ↓{lags[-2] - lags[-1]:,}"


def render(snapshot: Snapshot, history: History, source: str) -> Group:
    """The two tables of one snapshot: topics (rates), groups (lag, delay, rates)."""
    topics = Table("topic", "partitions", "messages", "size", "in/s", "total", title="topics")
    for t in sorted(snapshot.topics, key=lambda t: t.name):
        name = escape(t.name) + (" [dim](dead letters)[/dim]" if t.dead_letter_topic else "")
        topics.add_row(
            name,
            str(t.partitions),
            f"{t.messages:,}",
            size_text(t.size_bytes),
            rate_text(t.publish_rate),
            f"{t.published_total:,}",
        )
    deliver: dict[str, float] = defaultdict(float)
    for edge in snapshot.flow.edges:
        if edge.kind == "consume" and edge.group is not None:
            deliver[edge.group] += edge.rate
    groups = Table(
        "group",
        "topics",
        "members",
        "lag",
        "out/s",
        "delay p50",
        "p99",
        "redeliveries",
        "dead letters",
        title="consumer groups",
    )
    for g in sorted(snapshot.groups, key=lambda g: g.group):
        lags = list(history.lags.get(g.group, ()))
        reasons = trouble(lags)
        delay = g.processing_delay
        groups.add_row(
            escape(g.group),
            escape(", ".join(g.topics)),
            str(g.members),
            f"{g.lag:,}{_trend(lags)}",
            rate_text(deliver.get(g.group, 0.0)),
            "-" if delay is None else ms_text(delay.p50_ms),
            "-" if delay is None else ms_text(delay.p99_ms),
            f"{g.redeliveries:,}",
            f"{g.dead_letters:,}",
            style="red" if reasons else ("yellow" if g.dead_letters else None),
        )
    when = time.strftime("%H:%M:%S", time.localtime(snapshot.time / 1000))
    footer = Text(
        f"{source} · {when} · red: lag above {LAG_LIMIT:,} or growing · Ctrl-C to quit", style="dim"
    )
    return Group(topics, groups, footer)


def snapshots(base: str, interval_ms: int) -> Iterator[Snapshot]:
    """The stream's snapshots, as they come; raises ``HttpApiError`` when it cannot connect or ends."""
    url = f"{base}/api/stream?interval={interval_ms}"
    try:
        response = urllib.request.urlopen(get(url), timeout=max(5.0, 3 * interval_ms / 1000))
    except (urllib.error.URLError, OSError) as exc:
        raise HttpApiError(
            f"cannot reach the broker's HTTP API at {base}: {getattr(exc, 'reason', exc)}"
        ) from None
    with response:
        try:
            for line in response:
                if line.startswith(b"data: "):
                    yield _decode.decode(line[len(b"data: ") :])
        except OSError as exc:
            raise HttpApiError(f"the stream from {base} broke: {exc}") from None
    raise HttpApiError(f"the stream from {base} ended")


def top(
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    interval: Annotated[
        int, typer.Option("--interval", min=200, help="Milliseconds between refreshes.")
    ] = 1000,
    http: HttpUrl = None,
    url: Url = None,
) -> None:
    """Live topics and consumer groups: rates, lag (and its trend), processing delay, dead letters."""
    base = derive_http_url(http, url)
    history = History()
    if once:
        snapshot = next(snapshots(base, interval))
        history.add(snapshot)
        out.print(render(snapshot, history, base))
        return
    try:
        with Live(Text(f"connecting to {base} ..."), console=out, auto_refresh=False) as live:
            frame: Group | Text = Text("")
            while True:
                try:
                    for snapshot in snapshots(base, interval):
                        history.add(snapshot)
                        frame = render(snapshot, history, base)
                        live.update(frame, refresh=True)
                except HttpApiError as exc:  # keep the last frame, say why it is stale, try again
                    live.update(Group(frame, Text(f"{exc}; retrying", style="yellow")), refresh=True)
                    time.sleep(RETRY_SECONDS)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
