"""The ``tidings`` command line: ``version``, ``log info`` and ``log verify``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings import __version__
from tidings.cli.main import app
from tidings.records import build_batch
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog

TIDINGS = Path(sys.executable).parent / "tidings"
runner = CliRunner()


def run_tidings(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, as an operator runs it (through ``main``'s error handling)."""
    return subprocess.run(
        [str(TIDINGS), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


@pytest.fixture
def log_dir(tmp_path):
    """A log of 3 segments: batches of 1, 2, 3, 4 and 5 records (15 records), 3 of them in sealed segments."""
    directory = tmp_path / "orders-0"
    one = build_batch([b"x" * 200], timestamp=1)
    config = LogConfig(fsync=FsyncPolicy.parse("never"), max_segment_bytes=2 * len(one) + 400)
    with PartitionLog(str(directory), config) as log:
        for count in range(1, 6):
            log.append(build_batch([b"x" * 200] * count, timestamp=1))
        figures = {
            "segments": log.segments,
            "size": log.size,
            "end": log.end_offset,
        }
    assert len(figures["segments"]) > 1
    return directory, figures


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_version_of_the_installed_command():
    completed = run_tidings("version")
    assert completed.returncode == 0
    assert completed.stdout.strip() == __version__


def test_log_info_shows_the_log_figures(log_dir):
    directory, figures = log_dir
    result = runner.invoke(app, ["log", "info", str(directory)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for segment in figures["segments"]:
        assert f"{segment.base_offset:020d}" in result.stdout
        assert f"{segment.base_offset}..{segment.next_offset}" in result.stdout
        assert f"{segment.size:,}" in result.stdout
        assert str(segment.max_append_time) in result.stdout
    assert f"offsets 0..{figures['end']}, {figures['size']:,} bytes" in result.stdout
    assert "recovery scanned 0 bytes, cut 0 torn bytes" in result.stdout


def test_log_verify_counts_every_batch_and_record(log_dir):
    directory, figures = log_dir
    result = runner.invoke(app, ["log", "verify", str(directory)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok: 5 batches, 15 records, offsets 0..{figures['end']}"
    assert figures["end"] == 15


def test_log_verify_of_an_empty_log(tmp_path):
    PartitionLog(str(tmp_path / "empty")).close()
    result = runner.invoke(app, ["log", "verify", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: 0 batches, 0 records, offsets 0..0"


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_missing_directory_is_one_line_and_not_created(tmp_path, command):
    missing = tmp_path / "no-such-log"
    completed = run_tidings("log", command, str(missing))
    assert completed.returncode != 0
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert str(missing) in lines[0]
    assert "Traceback" not in completed.stderr
    assert not missing.exists()


@pytest.mark.parametrize(
    "name",
    [
        "[x]",  # rich markup
        "[/x]",  # a closing tag without its opening one
        "a" * 150,  # longer than the terminal
    ],
)
def test_the_error_line_shows_any_path_as_it_is(tmp_path, name):
    missing = tmp_path / name / "log"
    completed = run_tidings("log", "info", str(missing))
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [f"error: log directory {missing} does not exist"]


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_directory_without_a_log_is_left_alone(tmp_path, command):
    (tmp_path / "notes.txt").write_text("not a log")
    completed = run_tidings("log", command, str(tmp_path))
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        f"error: {tmp_path} holds no partition log (no .log segment files)"
    ]
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_file_is_not_a_log_directory(tmp_path, command):
    path = tmp_path / "plain-file"
    path.write_bytes(b"hello")
    completed = run_tidings("log", command, str(path))
    assert completed.returncode != 0
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert path.read_bytes() == b"hello"


def damage_first_segment(directory: Path) -> None:
    first = sorted(directory.glob("*.log"))[0]
    data = bytearray(first.read_bytes())
    data[100] ^= 0xFF  # inside the first batch's records: its CRC no longer matches
    first.write_bytes(bytes(data))


def test_log_verify_stops_at_damage_with_exit_2(log_dir):
    directory, _ = log_dir
    damage_first_segment(directory)
    result = runner.invoke(app, ["log", "verify", str(directory)], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "damaged at offset 0" in result.stdout
    completed = run_tidings("log", "verify", str(directory))
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
