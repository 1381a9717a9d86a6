"""``tidings broker`` as an operator runs it: the ready line, clean SIGTERM, one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.server.helpers import BrokerProcess
from tidings.errors import BrokerConfigError
from tidings.server import BrokerConfig, load_file
from tidings.server.config import from_mapping


def run_broker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", "broker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def one_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    return lines[0]


def test_ready_line_and_clean_sigterm(tmp_path):
    broker = BrokerProcess(tmp_path / "data")
    try:
        assert broker.line == f"tidings broker listening on tidings://127.0.0.1:{broker.port}"
        assert broker.terminate() == 0
        assert broker.process.stdout.read() == ""  # exactly one line
    finally:
        broker.close()
    assert (tmp_path / "data" / "lock").read_text().strip() != ""  # the lock file held the pid


def test_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(run_broker("--port", str(port), "--data", str(tmp_path / "d")))
    assert line == f"error: cannot listen on 127.0.0.1:{port}: address already in use"


def test_data_dir_in_use(tmp_path):
    broker = BrokerProcess(tmp_path / "data")
    try:
        line = one_error_line(run_broker("--port", "0", "--data", str(tmp_path / "data")))
        assert "is in use by another broker" in line and str(broker.process.pid) in line
    finally:
        broker.terminate()
        broker.close()


def test_bad_flag_value(tmp_path):
    line = one_error_line(run_broker("--fsync", "sometimes", "--data", str(tmp_path / "d")))
    assert "fsync" in line and "sometimes" in line


def test_bad_config_file_value_names_the_key(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text('port = "seventy"\n')
    line = one_error_line(run_broker("--config", str(config)))
    assert "port" in line and "seventy" in line and str(config) in line


def test_config_file_then_flags(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text('[broker]\nfsync = "interval:50"\ndefault-partitions = 3\nport = 7999\n')
    loaded = load_file(str(config))
    assert (loaded.fsync, loaded.default_partitions, loaded.port) == ("interval:50", 3, 7999)
    assert from_mapping({"port": 0}, "command line", loaded).port == 0


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"colour": "blue"}, ["unknown key 'colour'"]),
        ({"port": 70000}, ["port", "0..65535"]),
        ({"default_partitions": 0}, ["default_partitions"]),
        ({"max_frame_size": 1024}, ["max_frame_size"]),
        ({"auto_create_topics": "yes"}, ["auto_create_topics", "bool"]),
        ({"retention_ms": 0}, ["retention_ms"]),
        ({"port": True}, ["port", "int"]),
    ],
)
def test_config_errors_name_the_key(values, words):
    with pytest.raises(BrokerConfigError) as error:
        from_mapping(values, "test")
    for word in words:
        assert word in str(error.value)


def test_defaults():
    config = BrokerConfig()
    assert (config.host, config.port, config.http_port) == ("127.0.0.1", 7400, 7401)
    assert (config.data_dir, config.fsync, config.default_partitions) == ("./.tidings", "always", 1)
    assert config.auto_create_topics and config.max_frame_size == 8 * 1024 * 1024
