"""``tidings run module:app``: loading apps by reference, and a graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
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


def test_the_command_runs_a_service_until_sigint(tmp_path):
    env = {**os.environ, "TIDINGS_URL": "memory://cli-run", "SHOP_DATA": str(tmp_path), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [str(TIDINGS), "run", "examples.shop.payment:service", "examples.shop.inventory:service"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "inventory.db").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "inventory stopped" in err and "payment stopped" in err
    assert err.index("inventory stopped") < err.index("payment stopped")
