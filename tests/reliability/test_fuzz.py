"""Mutated frames, batches and handshakes: only the documented errors, no hang, no crash (scenario 7)."""

from __future__ import annotations

import pytest

from tests.reliability import fuzz
from tests.reliability.sizes import CI


def test_mutated_inputs_raise_only_the_documented_errors():
    figures = fuzz.in_process(CI["fuzz_codec"])
    assert all(result["crashes"] == 0 for result in figures.values()), figures


def test_atheris_finds_nothing_in_the_parsers():
    pytest.importorskip("atheris", reason="atheris is in the dev and reliability extras")
    figures = fuzz.atheris_run(CI["fuzz_codec"])
    assert all(result["crashes"] == 0 and result["inputs"] > 0 for result in figures.values()), figures


async def test_a_broker_fed_mutated_frames_over_sockets_never_hangs_nor_crashes(tmp_path):
    figures = await fuzz.over_sockets(CI["fuzz_socket"], tmp_path)
    assert figures["hangs"] == 0 and not figures["broker_crashed"], figures
    assert figures["rss_growth_mib"] < 50, figures
