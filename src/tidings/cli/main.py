"""``tidings``: the command line. Errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from tidings import __version__
from tidings.cli import (
    asyncapi_command,
    auth_command,
    bench_command,
    broker_command,
    demo_command,
    groups_command,
    log_commands,
    map_command,
    migrate_command,
    publish_command,
    replay_command,
    run_command,
    tail_command,
    top_command,
    topics_command,
)
from tidings.errors import TidingsError

app = typer.Typer(
    name="tidings",
    help="Tidings: durable events for Python services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(log_commands.app, name="log")
app.command(name="asyncapi")(asyncapi_command.asyncapi)
app.add_typer(auth_command.app, name="auth")
app.command(name="bench")(bench_command.bench)
app.command(name="broker")(broker_command.broker)
app.command(name="demo")(demo_command.demo)
app.command(name="map")(map_command.map_command)
app.command(name="migrate")(migrate_command.migrate)
app.command(name="publish")(publish_command.publish)
app.command(name="replay")(replay_command.replay_command)
app.command(name="run")(run_command.run)
app.command(name="tail")(tail_command.tail)
app.command(name="top")(top_command.top)
app.add_typer(topics_command.app, name="topics")
app.add_typer(groups_command.app, name="groups")
err = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except TidingsError as exc:
        # escaped: a path may hold [brackets]; soft_wrap: one line, however long
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
