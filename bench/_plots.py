"""PNG plots of an e2e run (matplotlib, no display): throughput bars and latency CDFs.

Drawn from the run's JSON payload only, so a plot never shows a figure the
tables do not. Written to docs/performance/ and linked from the generated
part of docs/performance.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

CDF_POINTS = 200


def _systems(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in payload["peers"] if "cases" in r]


def throughput_bars(payload: dict[str, Any], path: Path) -> None:
    systems = _systems(payload)
    sizes = [str(size) for size in payload["sizes"]]
    measures = [
        ("publish_per_s", "publish, 1 producer"),
        ("publish_4_per_s", "publish, 4 producers"),
        ("consume_per_s", "consume + ack"),
    ]
    figure, axes = plt.subplots(len(sizes), 1, figsize=(10, 3.2 * len(sizes)), squeeze=False)
    width = 0.8 / len(measures)
    for row, size in enumerate(sizes):
        axis = axes[row][0]
        for index, (key, label) in enumerate(measures):
            values = [system["cases"][size][key] for system in systems]
            positions = [n + (index - (len(measures) - 1) / 2) * width for n in range(len(systems))]
            axis.bar(positions, values, width, label=label)
        axis.set_xticks(range(len(systems)), [system["name"] for system in systems], rotation=15, fontsize=8)
        axis.set_ylabel("events/s")
        axis.set_yscale("log")
        axis.set_title(f"{size} B events (log scale)", fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        if row == 0:
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _cdf(axis: Any, summary: dict[str, Any], label: str) -> None:
    values = summary["cdf_ms"]
    quantiles = [i / (len(values) - 1) for i in range(len(values))]
    axis.plot(values, quantiles, label=label)


def latency_cdfs(payload: dict[str, Any], path: Path) -> None:
    systems = _systems(payload)
    sizes = [str(size) for size in payload["sizes"]]
    figure, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    for column, size in enumerate(sizes):
        axis = axes[0][column]
        for system in systems:
            _cdf(axis, system["cases"][size]["latency"], system["name"])
        axis.set_xscale("log")
        axis.set_xlabel("publish to handler, ms (log)")
        axis.set_ylabel("fraction of events")
        axis.set_title(f"{size} B at {payload['latency_rate']:,}/s", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def tidings_rates(payload: dict[str, Any], path: Path) -> bool:
    ours = next((r for r in _systems(payload) if r["name"] == "tidings"), None)
    if ours is None or "more" not in next(iter(ours["cases"].values())):
        return False
    sizes = [str(size) for size in payload["sizes"]]
    figure, axes = plt.subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    for column, size in enumerate(sizes):
        axis = axes[0][column]
        case = ours["cases"][size]
        runs = [(case["latency"]["rate"], case["latency"])]
        runs += [(summary["rate"], summary) for summary in case["more"]["latency"].values()]
        runs.sort(key=lambda run: run[0] or 10**9)
        for rate, summary in runs:
            _cdf(axis, summary, f"{rate:,}/s" if rate else "saturation")
        axis.set_xscale("log")
        axis.set_xlabel("publish to handler, ms (log)")
        axis.set_ylabel("fraction of events")
        axis.set_title(f"Tidings, {size} B, by publish rate", fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write(payload: dict[str, Any], directory: Path) -> list[tuple[str, Path]]:
    """Draw every plot of the run into ``directory``; returns (title, path) pairs for the docs."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    path = directory / "throughput.png"
    throughput_bars(payload, path)
    out.append(("Throughput by system", path))
    path = directory / "latency-cdf.png"
    latency_cdfs(payload, path)
    out.append(("End-to-end latency CDF by system", path))
    path = directory / "tidings-latency-by-rate.png"
    if tidings_rates(payload, path):
        out.append(("Tidings end-to-end latency by rate", path))
    return out
