"""Medians of the repetitions, the one side-by-side table, the notes under it, and the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import stats

# Per workload kind, the figures the table shows: key, label, and how to print the value.
SHOWN: dict[str, list[tuple[str, str, str]]] = {
    "fan-out": [
        ("deliveries_per_second", "deliveries/s", "count"),
        ("latency_p50_ms", "latency p50, ms", "ms"),
        ("latency_p99_ms", "latency p99, ms", "ms"),
        ("lost_deliveries", "lost deliveries", "count"),
        ("clients_dropped", "clients dropped by the server", "count"),
        ("rate_limited_refusals", "sends refused (rate-limited)", "count"),
        ("server_cpu_seconds_per_million_deliveries", "server CPU s per 1M deliveries", "s"),
        ("server_cores_busy", "server CPU, share of a core", "share"),
        ("generator_cpu_seconds", "generator CPU s (all processes)", "s"),
        ("generator_busiest_process_share", "busiest generator process", "share"),
        ("bytes_received_per_delivery", "bytes received per delivery", "count"),
        ("other_cores_busy", "other work on the machine, cores", "cores"),
    ],
    "capacity": [
        ("peak_deliveries_per_second", "peak deliveries/s", "count"),
        ("peak_rate", "peak messages/s (last step passed)", "count"),
        ("first_failing_rate", "first failing messages/s", "count"),
        ("peak_latency_p99_ms", "latency p99 at peak, ms", "ms"),
        ("server_cores_busy_at_peak", "server CPU at peak, share of a core", "share"),
        ("generator_cores_busy_at_peak", "generator CPU at peak, cores", "cores"),
        ("generator_busiest_process_share_at_peak", "busiest generator process at peak", "share"),
        ("server_cores_busy_at_failure", "server CPU at failing step", "share"),
        (
            "generator_busiest_process_share_at_failure",
            "busiest generator process at failing step",
            "share",
        ),
    ],
    "persistence": [
        ("acked_per_second", "acknowledged messages/s", "count"),
        ("ack_p50_ms", "ack latency p50, ms", "ms"),
        ("ack_p99_ms", "ack latency p99, ms", "ms"),
        ("refused", "sends refused", "count"),
        ("server_cpu_ms_per_thousand", "server CPU ms per 1,000 messages", "ms"),
        ("server_cores_busy", "server CPU, share of a core", "share"),
    ],
    "history": [
        ("history_p50_ms", "50 messages back, p50 ms", "ms"),
        ("history_p99_ms", "50 messages back, p99 ms", "ms"),
        ("history_requests_per_second", "history requests/s (one at a time)", "count"),
    ],
    "locked-row": [
        ("ping_p50_ms", "#b user's ping, p50 ms", "ms"),
        ("ping_p99_ms", "#b user's ping, p99 ms", "ms"),
        ("send_p50_ms", "#b user's send to ack, p50 ms", "ms"),
        ("send_p99_ms", "#b user's send to ack, p99 ms", "ms"),
        ("login_ms", "a guest's login meanwhile, ms", "ms"),
        ("join_ms", "its join of #b, ms", "ms"),
        ("locked_room_unavailable", "#a sends answered unavailable", "count"),
        ("locked_room_answer_max_ms", "#a sends: longest wait for an answer, ms", "ms"),
    ],
    "terminal": [
        ("key_to_screen_p50_ms", "key to screen under the flood, p50 ms", "ms"),
        ("key_to_screen_p99_ms", "key to screen under the flood, p99 ms", "ms"),
        ("key_to_screen_idle_p50_ms", "key to screen, no traffic, p50 ms", "ms"),
        ("key_to_screen_idle_p99_ms", "key to screen, no traffic, p99 ms", "ms"),
        ("client_cpu_share", "client CPU under the flood, share of a core", "share"),
    ],
    "files": [
        ("plain_tls_mb_per_second", "plain Python TLS copy, MB/s", "count"),
        ("upload_mb_per_second", "upload, MB/s", "count"),
        ("upload_vs_plain", "upload / plain copy", "share"),
        ("download_mb_per_second", "download, MB/s", "count"),
        ("download_vs_plain", "download / plain copy", "share"),
        ("upload_seconds_with_hashing", "upload with hashing, s", "s"),
        ("download_seconds_with_hashing", "download with hashing, s", "s"),
        ("server_rss_growth_mib", "server RSS growth during transfers, MiB", "count"),
        ("chat_p99_quiet_ms", "chat p99, nothing else, ms", "ms"),
        ("chat_p99_during_upload_ms", "chat p99 during the upload, ms", "ms"),
        ("chat_p99_rise_ms", "chat p99 rise, ms", "ms"),
    ],
    "room-setup": [
        ("setup_seconds", "first connect to a calm room, s", "s"),
        ("all_in_seconds", "first connect to the last member in, s", "s"),
        ("server_cpu_ms_per_member", "server CPU ms per member", "ms"),
        ("received_bytes_per_member", "bytes received per member", "count"),
        ("connect_p50_ms", "connect and join p50, ms", "ms"),
        ("connect_p99_ms", "connect and join p99, ms", "ms"),
        ("clients_dropped", "clients dropped by the server", "count"),
    ],
    "cluster": [
        ("single_cpu_us_per_delivery", "one node, no bus: server CPU us per delivery", "ms"),
        ("cluster_cpu_us_per_delivery", "3 nodes, Redis bus: CPU us per delivery (sum)", "ms"),
        ("cpu_ratio", "CPU per delivery, 3 nodes / one node (goal <= 1.3)", "cores"),
        ("redis_cpu_us_per_delivery", "Redis CPU us per delivery", "ms"),
        ("single_deliveries_per_second", "one node: deliveries/s", "count"),
        ("cluster_deliveries_per_second", "3 nodes: deliveries/s", "count"),
        ("single_latency_p50_ms", "one node: latency p50, ms", "ms"),
        ("single_latency_p99_ms", "one node: latency p99, ms", "ms"),
        ("local_latency_p99_ms", "3 nodes, speakers' node: latency p99, ms", "ms"),
        ("remote_latency_p50_ms", "3 nodes, across the bus: latency p50, ms", "ms"),
        ("remote_latency_p99_ms", "3 nodes, across the bus: latency p99, ms", "ms"),
        ("added_latency_p50_ms", "latency p50 the bus adds, ms", "ms"),
        ("added_latency_p99_ms", "latency p99 the bus adds, ms (goal <= 5)", "ms"),
        ("cluster_lost_deliveries", "3 nodes: lost deliveries", "count"),
        ("cluster_cores_busy", "3 nodes: CPU, cores", "cores"),
    ],
    "cluster-failover": [
        ("clients_on_killed_node", "members on the killed node", "count"),
        ("resumed_95_seconds", "95 % of them resumed after, s (goal <= 5)", "s"),
        ("resumed_max_seconds", "the last resumed after, s", "s"),
        ("not_resumed", "not resumed within 30 s", "count"),
        ("killed_sender_resumed_seconds", "its sender (an account) resumed after, s", "s"),
        ("messages_acknowledged", "messages acknowledged", "count"),
        ("messages_never_acknowledged", "messages never acknowledged", "count"),
        ("lost_messages", "acknowledged, missing at a member (goal 0)", "count"),
        ("duplicated_messages", "a msg_id under two seq (goal 0)", "count"),
    ],
    "web-path": [
        ("rss_per_connection_bytes", "server RSS per idle connection, KiB", "kib"),
        ("server_cpu_seconds_per_million_deliveries", "server CPU s per 1M deliveries", "s"),
        ("server_cores_busy", "server CPU, share of a core", "share"),
        ("lost_deliveries", "lost deliveries", "count"),
    ],
    "idle": [
        ("rss_per_connection_bytes", "server RSS per connection, KiB", "kib"),
        ("server_cpu_ms_per_handshake", "server CPU ms per login (IRC: registration)", "ms"),
        ("connect_p50_ms", "connect p50, ms", "ms"),
        ("connect_p99_ms", "connect p99, ms", "ms"),
        ("connection_failures", "connections failed", "count"),
    ],
}

# Not properties of a server, so a ratio between the two columns would mean nothing.
NO_RATIO = {"other_cores_busy"}

Summary = dict[str, dict[str, dict[str, float | None]]]  # workload -> server -> figure -> median


# Workloads whose figures hang together (the peak, the step after it, the CPU at each): the
# run with the median of this figure stands for them all, since figure-by-figure medians could
# mix repetitions into a peak above the first failing rate.
MEDIAN_RUN_BY = {"capacity": "peak_rate"}


def medians(runs: list[dict[str, Any]]) -> Summary:
    """The median of every figure over the repetitions that did not fail, in run order."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    kinds: dict[str, str] = {}
    for run in runs:
        servers = grouped.setdefault(run["workload"], {})
        kinds[run["workload"]] = run["kind"]
        if run.get("error") is None:
            servers.setdefault(run["server"], []).append(run["figures"])
    summary: Summary = {}
    for workload, servers in grouped.items():
        summary[workload] = {}
        by = MEDIAN_RUN_BY.get(kinds[workload])
        for server, each in servers.items():
            if by is not None:
                summary[workload][server] = dict(_median_run(each, by))
                continue
            keys = list(dict.fromkeys(key for figures in each for key in figures))
            summary[workload][server] = {
                key: stats.median([figures.get(key) for figures in each]) for key in keys
            }
    return summary


def _median_run(each: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The lower median run by ``key``; a missing value (nothing passed) ranks lowest."""
    ranked = sorted(each, key=lambda figures: -math.inf if figures[key] is None else figures[key])
    return ranked[(len(ranked) - 1) // 2]


def _format(value: float | None, style: str) -> str:
    if value is None or math.isnan(value):
        return "—"
    if style == "share":
        return f"{value:.0%}"
    if style == "kib":
        return f"{value / 1024:.1f}"
    if style == "count":
        return f"{value:,.0f}"
    if style == "cores":
        return f"{value:.2f}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2f}"


def _ratio(first: float | None, second: float | None) -> str:
    if first is None or second is None or second == 0 or math.isnan(first) or math.isnan(second):
        return "—"
    return f"{first / second:.2f}"


def servers_that_ran(runs: list[dict[str, Any]], servers: list[str]) -> list[str]:
    """``servers`` that ran at least one workload (failed runs count): a table's columns.
    A run of Parley's own workloads only (``--only web``) has no ngIRCd column to leave empty.
    """
    ran = {run["server"] for run in runs}
    return [name for name in servers if name in ran] or servers[:1]


def table(summary: Summary, servers: list[str]) -> str:
    """One table: each workload's figures, a column per server, and the first ÷ the second."""
    header = ["workload", "figure", *servers]
    compare = len(servers) == 2
    if compare:
        header.append(f"{servers[0]}/{servers[1]}")
    rows = [header]
    for workload, by_server in summary.items():
        shown_workload = workload
        for key, label, style in SHOWN[workload.split(" ")[0]]:
            values = [by_server.get(name, {}).get(key) for name in servers]
            row = [shown_workload, label, *(_format(value, style) for value in values)]
            if compare:
                row.append("" if key in NO_RATIO else _ratio(values[0], values[1]))
            rows.append(row)
            shown_workload = ""
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


# The web path's goal: a WebSocket member costs the server at most this many times a TLS one.
WEB_GOAL = 1.5


def web_ratios(summary: Summary) -> list[str]:
    """For each web-path load, WebSocket/TLS of the medians of memory and CPU, against the goal."""
    lines: list[str] = []
    for workload, by_server in summary.items():
        if not workload.startswith("web-path ") or not workload.endswith(" tls"):
            continue
        load = workload.removesuffix(" tls")
        tls = by_server.get("Parley", {})
        websocket = summary.get(f"{load} websocket", {}).get("Parley", {})
        parts = []
        for key, label in (
            ("rss_per_connection_bytes", "memory per idle connection"),
            ("server_cpu_seconds_per_million_deliveries", "server CPU per delivery"),
        ):
            first, second = websocket.get(key), tls.get(key)
            ratio = _ratio(first, second)
            verdict = ""
            if ratio != "—":
                verdict = " (within the goal)" if float(ratio) <= WEB_GOAL else " (over the goal)"
            parts.append(f"{label} {ratio}x{verdict}")
        lines.append(f"{load}, WebSocket/TLS (goal {WEB_GOAL}x or less): " + "; ".join(parts))
    return lines


def _step_line(step: dict[str, Any]) -> str:
    p99 = step["latency_p99_ms"]
    outcome = f"FAIL ({step['failed']})" if step["failed"] else "pass"
    return (
        f"{step['rate']}/s {outcome}: {_format(step['deliveries_per_second'], 'count')} deliv/s, "
        f"p99 {_format(p99, 'ms')} ms, server {_format(step['server_cores_busy'], 'share')}, "
        f"generator {_format(step['generator_cores_busy'], 'cores')} cores "
        f"(busiest process {_format(step['generator_busiest_process_share'], 'share')}), "
        f"other work {_format(step['other_cores_busy'], 'cores')} cores"
    )


def notes(runs: list[dict[str, Any]]) -> list[str]:
    """Lines for under the table: failed runs, anything odd, and each capacity run's steps."""
    lines: list[str] = []
    tls: dict[str, str] = {}
    for run in runs:
        where = f"{run['workload']}, {run['server']}, repetition {run['repetition'] + 1}"
        if run.get("error") is not None:
            lines.append(f"{where}: FAILED: {run['error']}")
            continue
        details = run.get("details", {})
        if details.get("tls"):
            tls.setdefault(run["server"], details["tls"])
        lines.extend(f"{where}: {note}" for note in dict.fromkeys(run.get("notes", [])))
        if run["kind"] == "capacity":
            lines.append(f"{where}: stopped: {details.get('stopped', '?')}")
            lines.extend(f"    {_step_line(step)}" for step in details.get("steps", []))
            if "saturation_at_last_step" in details:
                lines.append(f"    busy at the last step: {details['saturation_at_last_step']}")
    lines.extend(f"TLS with {server}: {cipher}" for server, cipher in tls.items())
    return lines


def _finite(value: Any) -> Any:
    """NaN and infinity are not JSON: an unmeasurable figure is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def write_json(
    path: Path, meta: dict[str, Any], runs: list[dict[str, Any]], summary: Summary
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "medians": summary, "runs": runs}
    path.write_text(json.dumps(_finite(document), indent=2, allow_nan=False) + "\n")
