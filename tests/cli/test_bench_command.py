"""``tidings bench``: finds the checkout's bench/ directory, refuses clearly without one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tidings.cli.bench_command import find_bench_dir
from tidings.cli.main import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_the_bench_directory_is_found_from_inside_the_checkout() -> None:
    assert find_bench_dir(REPO / "docs") == REPO / "bench"


def test_a_directory_outside_a_checkout_falls_back_to_the_package_source(tmp_path: Path) -> None:
    # an editable install (this one) still finds the checkout next to the package
    assert find_bench_dir(tmp_path) == REPO / "bench"


def test_an_unknown_part_is_refused_with_the_choices() -> None:
    result = runner.invoke(app, ["bench", "--only", "network"])
    assert result.exit_code != 0
    assert "storage" in str(result.exception) and "e2e" in str(result.exception)
