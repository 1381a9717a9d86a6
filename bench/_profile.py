"""Profile a benchmark's hot path with cProfile and keep the few functions that cost the most.

cProfile adds a fixed cost to every Python call, so it exaggerates small
functions called often; the shares it reports say where the time goes, not
how fast the code runs without it. Throughput figures come from unprofiled runs.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SRC = str(Path(__file__).resolve().parent.parent / "src") + "/"


def _where(filename: str, line: int, function: str) -> str:
    if filename == "~":  # a built-in
        return function.strip("<>")
    short = filename[len(_SRC) :] if filename.startswith(_SRC) else Path(filename).name
    return f"{short}:{line} {function}"


def profile(label: str, work: Callable[[], Any], top: int = 8) -> dict[str, Any]:
    """Run ``work`` under cProfile; return the ``top`` functions by own time, with their share."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        work()
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = [
        item
        for item in stats.stats.items()  # type: ignore[attr-defined]
        if "_lsprof.Profiler" not in item[0][2]
    ]
    rows.sort(key=lambda item: item[1][2], reverse=True)
    entries = [
        {
            "function": _where(*key),
            "calls": calls,
            "own_s": round(own, 6),
            "cumulative_s": round(cumulative, 6),
            "own_share": round(own / total, 4) if total else 0.0,
        }
        for key, (_, calls, own, cumulative, _) in rows[:top]
    ]
    return {"label": label, "total_s": round(total, 6), "top": entries}
