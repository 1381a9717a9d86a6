"""``tidings auth hash-password | new-token``: make the secrets a broker's ``[auth]`` table holds.

The broker never stores a password, only its scrypt hash: ``hash-password``
prints the string to paste as ``password = "..."`` in ``[[auth.users]]``.
The password is read from a hidden prompt (typed twice), or from stdin with
``--stdin`` for scripts, never from the command line, where it would end up
in the shell's history and in ``ps``. ``new-token`` prints a fresh random
token for ``[[auth.tokens]]`` (give it to the service as ``TIDINGS_TOKEN``).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tidings.core.auth.credentials import hash_password, new_token

app = typer.Typer(help="Make password hashes and tokens for the broker's [auth] table.", no_args_is_help=True)


@app.command("hash-password")
def hash_password_command(
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from the first line of stdin (scripts).")
    ] = False,
) -> None:
    """Print the scrypt hash of a password, for ``password = "..."`` in ``[[auth.users]]``."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise typer.BadParameter("the password is empty")
    typer.echo(hash_password(password))


@app.command("new-token")
def new_token_command() -> None:
    """Print a new random token (256 bits), for ``token = "..."`` in ``[[auth.tokens]]``."""
    typer.echo(new_token())
