"""The load test's files: `summary.csv` (one row per target and run) and `loadtest.png`.

The plot has one column per run and two rows: request latency against time since the run
started (each request a dot at its start, the median per half-second drawn through them) and the
node tier's hit ratio per half-second, one colour per target.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CSV_COLUMNS", "write_csv", "write_plot", "write_report"]

Timeline = Sequence[tuple[float, float, str]]  # (start after t0, seconds, node tier h/m/"")

CSV_COLUMNS = (
    "target",
    "run",
    "nodes",
    "time_to_configure_s",
    "node_p50_ms",
    "node_p95_ms",
    "node_p99_ms",
    "request_p50_ms",
    "request_p95_ms",
    "request_p99_ms",
    "requests",
    "failures",
    "verified_bodies",
    "bytes",
    "origin_requests",
    "origin_not_modified",
    "origin_bytes",
    "origin_payload_bytes",
    "unique_urls",
    "node_hit_ratio",
    "site_hit_ratio",
    "cache_cpu_s",
    "loadgen_cpu_s",
)
COLOURS = {"outpost": "tab:blue", "squid": "tab:orange", "nginx-static": "tab:gray"}
BIN_SECONDS = 0.5


def write_report(
    directory: Path,
    summaries: Mapping[str, Mapping[str, Any]],
    timelines: Mapping[str, Sequence[Timeline]],
) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = directory / "summary.csv", directory / "loadtest.png"
    write_csv(csv_path, summaries)
    write_plot(png_path, summaries, timelines)
    return {"csv": str(csv_path), "plot": str(png_path)}


def write_csv(path: Path, summaries: Mapping[str, Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name, summary in summaries.items():
            for run in summary["runs"]:
                row = {key: run.get(key, "") for key in CSV_COLUMNS}
                row.update(target=name, nodes=summary["nodes"])
                for tier in ("node", "site"):
                    ratio = run["hit_ratio"].get(tier)
                    row[f"{tier}_hit_ratio"] = "" if ratio is None else f"{ratio:.4f}"
                for key, value in row.items():
                    if isinstance(value, float):
                        row[key] = f"{value:.3f}"
                writer.writerow(row)


def _bins(timeline: Timeline) -> tuple[list[float], list[float], list[float]]:
    """Per half-second bin: its start, the median latency (ms), the node tier's hit ratio."""
    by_bin: dict[int, list[tuple[float, str]]] = {}
    for start, seconds, tier in timeline:
        by_bin.setdefault(int(start / BIN_SECONDS), []).append((seconds, tier))
    xs, medians, ratios = [], [], []
    for index in sorted(by_bin):
        entries = by_bin[index]
        latencies = sorted(seconds for seconds, _ in entries)
        told = [tier for _, tier in entries if tier]
        xs.append(index * BIN_SECONDS)
        medians.append(latencies[len(latencies) // 2] * 1000)
        ratios.append(told.count("h") / len(told) if told else float("nan"))
    return xs, medians, ratios


def write_plot(
    path: Path,
    summaries: Mapping[str, Mapping[str, Any]],
    timelines: Mapping[str, Sequence[Timeline]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a farm node or in CI
    import matplotlib.pyplot as plt

    runs = max(len(t) for t in timelines.values())
    figure, axes = plt.subplots(
        2, runs, figsize=(5 * runs, 7), sharex="col", sharey="row", squeeze=False
    )
    for name, per_run in timelines.items():
        colour = COLOURS.get(name)
        for column, timeline in enumerate(per_run):
            top, bottom = axes[0][column], axes[1][column]
            run = summaries[name]["runs"][column]
            starts = [entry[0] for entry in timeline]
            latencies = [max(entry[1] * 1000, 0.01) for entry in timeline]
            top.scatter(starts, latencies, s=1, alpha=0.15, color=colour, rasterized=True)
            xs, medians, ratios = _bins(timeline)
            label = f"{name}: configured in {run['time_to_configure_s']:.1f} s"
            top.plot(xs, medians, color=colour, label=label)
            bottom.plot(xs, ratios, color=colour, label=name)
            top.set_title(f"run {run['run']}")
    for column in range(runs):
        axes[0][column].set_yscale("log")
        axes[0][column].legend(fontsize="small")
        axes[1][column].set_xlabel("seconds since run start")
        axes[1][column].set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("request latency (ms; line: median per 0.5 s)")
    axes[1][0].set_ylabel("node-tier hit ratio per 0.5 s")
    axes[1][0].legend(fontsize="small")
    first = next(iter(summaries.values()))
    nodes, caches = first["nodes"], first["node_proxies"]
    figure.suptitle(f"Run-start storms: {nodes} HLT nodes, {caches} node caches")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
