"""``tidings broker`` as a process: it prints its HTTP URL and serves the API there."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request

import pytest

from tidings.errors import ListenError
from tidings.server import BrokerConfig, BrokerServer
from tidings.testing.servers import start_broker

HTTP_LINE = re.compile(r"tidings broker HTTP API on (http://\S+)")


def test_the_broker_process_prints_and_serves_its_http_api(tmp_path):
    broker = start_broker(tmp_path)
    try:
        deadline = time.monotonic() + 10
        while (found := HTTP_LINE.search(broker.output())) is None:
            assert time.monotonic() < deadline, broker.output()
            time.sleep(0.02)
        base = found.group(1)
        assert base != "http://127.0.0.1:7401"  # start_broker picked a free port
        request = urllib.request.Request(
            base + "/api/topics/cli/events", data=b'{"data": {"ok": true}}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["results"] == [{"partition": 0, "offset": 0}]
        with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
            assert json.load(response)["ready"] is True
    finally:
        assert broker.stop() == 0


async def test_an_http_port_in_use_fails_the_start_and_frees_the_data_dir(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = BrokerConfig(port=0, http_port=port, data_dir=str(tmp_path / "data"))
        expected = f"cannot serve HTTP on 127.0.0.1:{port}: address already in use"
        with pytest.raises(ListenError, match=expected):
            await BrokerServer(config).start(http=True)
    again = BrokerServer(config)  # the data directory was released
    await again.start(http=True)
    assert again.http_url == f"http://127.0.0.1:{port}"
    await again.stop()
