"""``tidings asyncapi --app MODULE:APP [...]``: the AsyncAPI 3.0 document of services, from their code.

Loads each App the way ``tidings run`` does (nothing is started: no broker is needed) and writes
the document that ``tidings.app.asyncapi`` builds from their declarations, as JSON, to stdout or
``--output``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tidings.app.asyncapi import asyncapi_document
from tidings.cli.run_command import load_app

__all__ = ["asyncapi"]


def asyncapi(
    apps: Annotated[
        list[str], typer.Option("--app", help="module:attribute of an App (or a factory); repeat for more.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="info.title (default: the services' names).")] = None,
    version: Annotated[str, typer.Option(help="info.version of the document.")] = "1.0.0",
) -> None:
    """Write the AsyncAPI 3.0 document of the given services (channels, operations, message schemas)."""
    document = asyncapi_document([load_app(reference) for reference in apps], title=title, version=version)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output} ({len(document['channels'])} channels, "
                   f"{len(document['operations'])} operations)", err=True)  # fmt: skip
