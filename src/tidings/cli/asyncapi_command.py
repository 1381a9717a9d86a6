"""``tidings asyncapi``: the AsyncAPI 3.0 document of services, from their code or from a running broker.

``--app MODULE:APP`` loads each App the way ``tidings run`` does (nothing is started: no broker is
needed) and documents its declarations. ``--from-broker URL`` reads a broker's ``/api/flow``
instead: the services that connected to it, the topics they published to and consumed from, and
the event types (with JSON Schemas) that ``tidings.App`` services announced. The first is what the
code says; the second what is actually running, including services written without ``tidings.App``.
Either way the document is JSON, to stdout or ``--output``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tidings.app.asyncapi import AnnouncedEvent, AnnouncedService, asyncapi_document, asyncapi_from_services
from tidings.cli.http_api import fetch
from tidings.cli.run_command import load_app
from tidings.server.http.models import FlowMap

__all__ = ["announced_services", "asyncapi"]


def announced_services(flow: FlowMap) -> list[AnnouncedService]:
    """The flow map's services as the AsyncAPI builder takes them."""
    services = []
    for s in flow.services:
        subscribes = []
        for pair in s.subscribes:
            topic, _, group = pair.rpartition(":")  # "topic:group"; a group name holds no ':'
            subscribes.append((topic, group))
        services.append(
            AnnouncedService(
                name=s.name,
                publishes=tuple(s.publishes),
                subscribes=tuple(subscribes),
                event_types=tuple(
                    AnnouncedEvent(
                        e.topic, e.type, e.version, e.schema if isinstance(e.schema, dict) else None
                    )
                    for e in s.event_types
                ),
                handles=tuple((h.topic, h.group, h.type) for h in s.handles),
            )
        )
    return services


def asyncapi(
    apps: Annotated[
        list[str] | None,
        typer.Option("--app", help="module:attribute of an App (or a factory); repeat for more."),
    ] = None,
    from_broker: Annotated[
        str | None,
        typer.Option(
            "--from-broker",
            metavar="HTTP_URL",
            help="Document what runs on this broker instead, from its HTTP API (http://127.0.0.1:7401).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="info.title (default: the services' names).")] = None,
    version: Annotated[str, typer.Option(help="info.version of the document.")] = "1.0.0",
) -> None:
    """Write the AsyncAPI 3.0 document of the given services (channels, operations, message schemas)."""
    if bool(apps) == bool(from_broker):
        raise typer.BadParameter("give --app (one or more) or --from-broker, not both", param_hint="--app")
    document: dict[str, Any]
    if from_broker:
        base = from_broker.rstrip("/")
        flow = fetch(base, "/api/flow", FlowMap)
        document = asyncapi_from_services(announced_services(flow), title=title, version=version, source=base)
    else:
        document = asyncapi_document(
            [load_app(reference) for reference in apps or []], title=title, version=version
        )
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output} ({len(document['channels'])} channels, "
                   f"{len(document['operations'])} operations)", err=True)  # fmt: skip
