"""Medians of the repetitions, the side-by-side table, and the JSON results."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

# The figures shown in the table for each workload, with their unit and how to print them.
SHOWN: dict[str, list[tuple[str, str]]] = {
    "fan-out": [
        ("deliveries_per_second", "deliveries/s"),
        ("latency_p50_ms", "p50 latency, ms"),
        ("latency_p99_ms", "p99 latency, ms"),
        ("lost_deliveries", "lost deliveries"),
        ("server_cpu_seconds_per_million_deliveries", "server CPU s per 1M deliveries"),
        ("generator_cpu_seconds", "generator CPU s"),
    ],
    "capacity": [
        ("peak_deliveries_per_second", "peak deliveries/s"),
        ("peak_rate", "peak messages/s"),
        ("server_cpu_seconds_at_peak", "server CPU s at peak step"),
        ("generator_cpu_seconds_at_peak", "generator CPU s at peak step"),
    ],
    "idle": [
        ("rss_per_connection_bytes", "RSS per connection, KB"),
        ("server_cpu_ms_per_handshake", "server CPU ms per handshake"),
        ("connect_p50_ms", "connect p50, ms"),
        ("connect_p99_ms", "connect p99, ms"),
    ],
}


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{workload label: {server name: {figure: median over repetitions}}}."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        grouped.setdefault(run["workload"], {}).setdefault(run["server"], []).append(run["figures"])
    result: dict[str, dict[str, dict[str, float]]] = {}
    for workload, servers in grouped.items():
        for server, figures in servers.items():
            numeric = {key for key, value in figures[0].items() if isinstance(value, int | float)}
            result.setdefault(workload, {})[server] = {
                key: statistics.median(float(each[key]) for each in figures) for key in numeric
            }
    return result


def _format(key: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if key == "rss_per_connection_bytes":
        return f"{value / 1024:.1f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table(summary: dict[str, dict[str, dict[str, float]]], servers: list[str]) -> str:
    """One table: every workload's figures, one column per server, and Parley ÷ the other."""
    names = [name for name in servers]
    header = ["workload", "figure", *names]
    if len(names) == 2:
        header.append(f"{names[0]} ÷ {names[1]}")
    rows = [header]
    for workload, by_server in summary.items():
        kind = workload.split(" ")[0]
        for key, label in SHOWN.get(kind, []):
            values = [by_server.get(name, {}).get(key) for name in names]
            row = [workload, label, *(_format(key, value) for value in values)]
            if len(names) == 2:
                first, second = values
                ratio = first / second if first is not None and second else None
                row.append("—" if ratio is None or math.isnan(ratio) else f"{ratio:.2f}x")
            rows.append(row)
            workload = ""
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_json(
    path: Path, meta: dict[str, Any], runs: list[dict[str, Any]], summary: dict[str, Any]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "medians": summary, "runs": runs}, indent=2))
