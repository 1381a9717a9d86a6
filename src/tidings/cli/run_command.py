"""``tidings run module:app [module:app ...]``: run services until SIGINT/SIGTERM, then stop them gracefully.

A reference names an ``App`` (``examples.shop.payment:service``) or a callable taking no
arguments that returns one (a factory reads its configuration, ``$TIDINGS_URL`` say, when called,
not when imported). The current directory is put on ``sys.path`` first, as ``python -m`` does, so
a project's own modules import without being installed.

Several apps run in one process and one event loop: they start in the order given and stop in the
reverse order, each stop graceful (``App.stop``: the handlers in flight finish and settle, the
outbox drains briefly). A second signal during the stop is ignored rather than cutting it short:
a killed stop is what ``kill -9`` is for, and the inbox and outbox make even that safe.

The loop is uvloop when it is installed (it is a dependency but on Windows), as for the broker:
each event's way from the socket to its handler and back costs less in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from tidings.app import App
from tidings.app.logs import LOG_FORMATS, configure_logging

__all__ = ["load_app", "run", "serve"]

log = logging.getLogger("tidings.cli.run")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def load_app(reference: str) -> App:
    """The ``App`` that ``module:attribute`` names (calling the attribute if it is a factory)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(
            f"{reference!r} is not module:attribute (e.g. examples.shop.payment:service)"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name}: {exc}") from exc
    target = getattr(module, attribute, None)
    if target is None:
        raise typer.BadParameter(f"module {module_name} has no attribute {attribute!r}")
    if not isinstance(target, App) and callable(target) and not isinstance(target, type):
        target = target()
    if not isinstance(target, App):
        raise typer.BadParameter(f"{reference} is a {type(target).__name__}, not a tidings.App")
    return target


async def serve(apps: Sequence[App], stop: asyncio.Event | None = None) -> None:
    """Start ``apps`` in order, wait for a stop signal (or ``stop``), stop them in reverse order."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    started: list[App] = []
    try:
        for app in apps:
            await app.start()
            started.append(app)
        gc.freeze()  # start-up's objects live as long as the process: keep full collections off them
        log.info(
            "tidings run: %s running on %s; SIGINT or SIGTERM stops",
            ", ".join(app.name for app in apps),
            type(loop).__module__.split(".")[0],
        )
        await stop.wait()
    finally:
        for app in reversed(started):
            await app.stop()
        for signum in STOP_SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)


def run(
    apps: Annotated[
        list[str], typer.Argument(help="module:attribute of an App or of a factory returning one.")
    ],
    log_level: Annotated[str, typer.Option(help="Logging level: debug, info, warning, error.")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text, or json: one JSON object per line with the handler's fields.")
    ] = "text",
) -> None:
    """Run the given services until SIGINT or SIGTERM, then stop them gracefully."""
    if log_format not in LOG_FORMATS:
        raise typer.BadParameter(f"--log-format is one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    configure_logging(log_level, "json" if log_format == "json" else "text")
    loaded = [load_app(reference) for reference in apps]
    names = [app.name for app in loaded]
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"two apps share a name: {names}")
    try:
        import uvloop  # noqa: PLC0415 - optional dependency, absent on Windows
    except ImportError:  # pragma: no cover
        asyncio.run(serve(loaded))
        return
    uvloop.run(serve(loaded))
