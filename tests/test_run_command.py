"""``tidings run module:app``: loading apps by reference, and a graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tidings.app import App
from tidings.app.application import AppState
from tidings.cli.run_command import load_app, serve

ROOT = Path(__file__).resolve().parent.parent
TIDINGS = Path(sys.executable).parent / "tidings"


def test_load_app_calls_a_factory(monkeypatch, tmp_path):
    monkeypatch.setenv("TIDINGS_URL", "memory://")
    monkeypatch.setenv("SHOP_DATA", str(tmp_path))
    app = load_app("examples.shop.payment:service")
    assert isinstance(app, App) and app.name == "payment" and app.broker_url == "memory://"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("examples.shop.payment", "is not module:attribute"),
        ("no_such_module_here:app", "cannot import no_such_module_here"),
        ("examples.shop.payment:nope", "has no attribute 'nope'"),
        ("examples.shop.payment:LIMIT", "is a int, not a tidings.App"),
        ("examples.shop.events:OrderPlaced", "is a EventMeta, not a tidings.App"),
    ],
)
def test_load_app_refuses_what_is_not_an_app(reference, message):
    with pytest.raises(typer.BadParameter, match=message):
        load_app(reference)


async def test_serve_starts_in_order_and_stops_every_app_on_sigterm():
    apps = [App("one", broker="memory://run-test"), App("two", broker="memory://run-test")]
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, os.kill, os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serve(apps), 10)
    assert [app.state for app in apps] == [AppState.STOPPED, AppState.STOPPED]


def run_until_sigint(tmp_path, url: str, *args: str) -> str:
    """``tidings run ARGS`` until it says it is running, then SIGINT; its stderr once it exited 0."""
    env = {**os.environ, "TIDINGS_URL": url, "SHOP_DATA": str(tmp_path), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [str(TIDINGS), "run", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        for line in process.stderr:  # ends if the process dies before saying it runs
            seen.append(line)
            if "; SIGINT or SIGTERM stops" in line:
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    err = "".join(seen) + (rest or "")
    assert process.returncode == 0, err
    return err


def test_the_command_runs_a_service_until_sigint(tmp_path):
    err = run_until_sigint(
        tmp_path, "memory://cli-run", "examples.shop.payment:service", "examples.shop.inventory:service"
    )
    assert "inventory stopped" in err and "payment stopped" in err
    assert err.index("inventory stopped") < err.index("payment stopped")
    assert "running on uvloop" in err  # the loop the broker runs on too


def test_the_command_logs_json_lines(tmp_path):
    err = run_until_sigint(
        tmp_path, "memory://cli-json", "--log-format", "json", "examples.shop.payment:service"
    )
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["message"] == "tidings: payment stopped" for line in lines)
