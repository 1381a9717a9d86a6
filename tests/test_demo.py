"""``make demo`` as a test: a fresh broker, orders published, every group receives every one."""

import subprocess
import sys

from tidings.testing.servers import free_port


def test_the_demo_runs_end_to_end_and_checks_itself(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidings",
            "demo",
            "--orders",
            "300",
            "--port",
            str(free_port()),
            "--data",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check ok" in result.stdout
    assert "each received all 300 orders" in result.stdout.replace("\n", " ")
    assert (tmp_path / "data" / "topics").is_dir()
