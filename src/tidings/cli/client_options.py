"""What the client-facing commands (publish, tail, topics, groups) share: the URL option and a runner.

Each command is a short coroutine over the public SDK (``tidings.connect``),
run with ``asyncio.run``. Errors are ``TidingsError``s, which ``main`` prints as
one line; a bad option value is a ``typer.BadParameter``; Ctrl-C exits 130
without a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer

from tidings.client.message import StartIn

T = TypeVar("T")

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TIDINGS_URL",
        help="Broker URL [env TIDINGS_URL; default tidings://127.0.0.1:7400].",
        show_default=False,
    ),
]

SERVICE = "tidings-cli"
"""How the commands name themselves on the broker's flow map."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def parse_start(text: str, option: str) -> StartIn:
    """``earliest``, ``latest``, an offset or an ISO-8601 time, for ``--from`` and ``--to``."""
    if text in ("earliest", "latest"):
        return "earliest" if text == "earliest" else "latest"
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not earliest, latest, an offset or an ISO-8601 time", param_hint=option
        ) from None
    return moment


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``name=value`` options (``--config``, ``--header``) as a dict."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint=option)
        out[name] = value
    return out
