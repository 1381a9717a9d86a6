"""``FsyncPolicy.parse`` and the configuration defaults."""

import pytest

from tidings.errors import StorageError
from tidings.storage import FsyncPolicy, LogConfig, RetentionPolicy, SyncMode


@pytest.mark.parametrize(
    ("text", "mode", "interval"),
    [
        ("always", SyncMode.ALWAYS, None),
        ("never", SyncMode.NEVER, None),
        ("interval:1", SyncMode.INTERVAL, 1),
        ("interval:250", SyncMode.INTERVAL, 250),
        ("  ALWAYS ", SyncMode.ALWAYS, None),
        ("Interval:0100", SyncMode.INTERVAL, 100),
    ],
)
def test_parse_good_values(text, mode, interval):
    policy = FsyncPolicy.parse(text)
    assert (policy.mode, policy.interval_ms) == (mode, interval)


@pytest.mark.parametrize("text", ["always", "never", "interval:250"])
def test_str_parses_back(text):
    assert str(FsyncPolicy.parse(text)) == text
    assert FsyncPolicy.parse(str(FsyncPolicy.parse(text))) == FsyncPolicy.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sometimes",
        "interval",
        "interval:",
        "interval:0",
        "interval:-5",
        "interval:1.5",
        "interval:10ms",
        "interval: 10",
        "interval:²",  # a digit to str.isdigit, not to int()
        "interval:\u0661\u0660",  # Arabic-Indic digits: int() takes them, a config file should not
        "always:1",
    ],
)
def test_parse_bad_values_name_the_text(text):
    with pytest.raises(StorageError, match="bad fsync policy") as info:
        FsyncPolicy.parse(text)
    assert repr(text) in str(info.value)
    assert "always, never or interval:MS" in str(info.value)


def test_defaults_keep_forever_and_fsync_always():
    config = LogConfig()
    assert config.fsync == FsyncPolicy(SyncMode.ALWAYS, None)
    assert config.retention == RetentionPolicy(None, None)
    assert config.validate_records
