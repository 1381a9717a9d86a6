"""How the terminal views write the broker's figures: rates, durations, delays, sizes.

``map``, ``top`` and the ``describe`` commands print the same figures as the
dashboard, so they format them one way, here (the dashboard's ``dom.js`` ``fmt``
is its twin).
"""

from __future__ import annotations

from tidings.server.http.models import Delay


def rate_text(rate: float) -> str:
    """Messages per second: one decimal below 10/s, whole numbers above."""
    if rate == 0:
        return "0/s"
    return f"{rate:.1f}/s" if rate < 10 else f"{rate:,.0f}/s"


def ms_text(value: float) -> str:
    if value < 10:
        return f"{value:.1f} ms"
    if value < 1000:
        return f"{value:,.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    if value < 3_600_000:
        return f"{value / 60_000:.1f} min"
    return f"{value / 3_600_000:.1f} h"


def delay_text(delay: Delay | None) -> str:
    return "no delay yet" if delay is None else f"p50 {ms_text(delay.p50_ms)}, p99 {ms_text(delay.p99_ms)}"


def size_text(n: int) -> str:
    """Bytes in binary units: ``512 B``, ``15.0 KiB``, ``1.2 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
