"""``tidings broker``: run a broker in the foreground until SIGTERM or Ctrl-C.

It prints the binary protocol's URL, then the HTTP API's (``--http-port``,
``--no-http``): the JSON API, ``/metrics`` and health (docs/http-api.md).

Settings come from the defaults, then ``--config FILE`` (TOML, see
``tidings.server.config``), then the flags given here, each flag beating the
file. Authentication is configured in the file's ``[auth]`` table
(docs/security.md); a broker asked to listen on a non-loopback address
without it refuses to start unless ``--insecure`` is given. Failures to
start (a bad setting, a port in use, a data directory locked by another
broker) are one line on stderr and exit status 1.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from tidings.server import BrokerConfig, load_file, run
from tidings.server.config import from_mapping


def broker(
    *,
    data: Annotated[Path | None, typer.Option("--data", help="Data directory (default ./.tidings).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 7400); 0 picks a free one.")] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP API port (default 7401); 0 picks a free one.")
    ] = None,
    no_http: Annotated[
        bool, typer.Option("--no-http", help="Serve no HTTP API (JSON API, /metrics, health).")
    ] = False,
    fsync: Annotated[str | None, typer.Option(help="always | interval:MS | never (default always).")] = None,
    default_partitions: Annotated[
        int | None,
        typer.Option("--default-partitions", help="Partitions of auto-created topics (default 1)."),
    ] = None,
    no_auto_create: Annotated[
        bool,
        typer.Option(
            "--no-auto-create",
            help="Create no topic on first use: producing to an unknown topic fails, subscribing waits.",
        ),
    ] = False,
    max_frame_size: Annotated[
        int | None, typer.Option("--max-frame-size", help="Largest frame accepted, bytes (default 8 MiB).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML configuration file.")] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen on a non-loopback address without authentication (a trusted network only).",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate: both ports speak TLS only.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug | info | warning | error.")
    ] = "warning",
) -> None:
    """Run a Tidings broker."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise typer.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_file(str(config)) if config is not None else BrokerConfig()
    flags: dict[str, Any] = {
        "data_dir": None if data is None else str(data),
        "host": host,
        "port": port,
        "http_port": http_port,
        "fsync": fsync,
        "default_partitions": default_partitions,
        "max_frame_size": max_frame_size,
        "auto_create_topics": False if no_auto_create else None,
        "http": False if no_http else None,
        "insecure": True if insecure else None,
        "tls_cert": None if tls_cert is None else str(tls_cert),
        "tls_key": None if tls_key is None else str(tls_key),
    }
    given = {key: value for key, value in flags.items() if value is not None}
    run(from_mapping(given, "command line", settings))
