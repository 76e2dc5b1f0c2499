"""Medians, ratios and the JSON file of the benchmark report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import capacity, report


def run(
    server: str, repetition: int, figures: dict[str, Any], error: str | None = None
) -> dict[str, Any]:
    return {
        "workload": "idle N=10",
        "kind": "idle",
        "server": server,
        "repetition": repetition,
        "figures": figures,
        "details": {},
        "notes": [],
        "error": error,
    }


def test_medians_skip_failed_runs_and_missing_values() -> None:
    runs = [
        run("Parley", 0, {"connect_p50_ms": 1.0}),
        run("Parley", 1, {"connect_p50_ms": 3.0}),
        run("Parley", 2, {"connect_p50_ms": None}),
        run("Parley", 3, {"connect_p50_ms": 100.0}, error="boom"),
        run("ngIRCd", 0, {"connect_p50_ms": 4.0}),
    ]
    summary = report.medians(runs)
    assert summary["idle N=10"]["Parley"]["connect_p50_ms"] == 2.0
    assert summary["idle N=10"]["ngIRCd"]["connect_p50_ms"] == 4.0


def test_the_table_shows_both_servers_and_their_ratio() -> None:
    summary = report.medians(
        [run("Parley", 0, {"connect_p50_ms": 3.0}), run("ngIRCd", 0, {"connect_p50_ms": 2.0})]
    )
    text = report.table(summary, ["Parley", "ngIRCd"])
    row = next(line for line in text.splitlines() if "connect p50" in line)
    assert row.split()[-3:] == ["3.00", "2.00", "1.50"]


def test_a_server_that_ran_no_workload_gets_no_column() -> None:
    # --only web with ngIRCd installed: every workload is Parley's own.
    runs = [run("Parley", 0, {"connect_p50_ms": 3.0})]
    shown = report.servers_that_ran(runs, ["Parley", "ngIRCd"])
    assert shown == ["Parley"]
    lines = report.table(report.medians(runs), shown).splitlines()
    assert lines[0].split() == ["workload", "figure", "Parley"]
    row = next(line for line in lines if "connect p50" in line)
    assert row.endswith(" 3.00"), row
    # One that ran, if only to fail, keeps its column (its cells say there is no figure).
    failed = [*runs, run("ngIRCd", 0, {}, error="it did not start")]
    shown = report.servers_that_ran(failed, ["Parley", "ngIRCd"])
    assert shown == ["Parley", "ngIRCd"]
    row = next(
        line
        for line in report.table(report.medians(failed), shown).splitlines()
        if "connect p50" in line
    )
    assert row.split()[-3:] == ["3.00", "—", "—"]


def test_the_json_file_has_no_nan(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.json"
    runs = [run("Parley", 0, {"connect_p50_ms": math.nan})]
    report.write_json(path, {}, runs, report.medians(runs))
    data = json.loads(path.read_text())
    assert data["runs"][0]["figures"]["connect_p50_ms"] is None


def test_a_capacity_step_fails_on_latency_loss_or_drops() -> None:
    passing = {
        "latency_p99_ms": 20.0,
        "lost_deliveries": 0,
        "clients_dropped": 0,
        "rate_limited_refusals": 0,
    }
    assert capacity.verdict(passing) == ""
    assert capacity.verdict({**passing, "latency_p99_ms": 150.0}).startswith("p99")
    assert "lost" in capacity.verdict({**passing, "lost_deliveries": 3})
    assert "dropped" in capacity.verdict({**passing, "clients_dropped": 1})
    assert capacity.verdict({**passing, "latency_p99_ms": None}) == "no latency samples"


def test_capacity_shows_the_median_run_whole() -> None:
    def capacity_run(repetition: int, peak: int | None, failing: int) -> dict[str, Any]:
        figures = {"peak_rate": peak, "first_failing_rate": failing}
        return {**run("Parley", repetition, figures), "workload": "capacity", "kind": "capacity"}

    runs = [capacity_run(0, None, 200), capacity_run(1, 200, 400), capacity_run(2, 800, 1600)]
    assert report.medians(runs)["capacity"]["Parley"] == {
        "peak_rate": 200,
        "first_failing_rate": 400,
    }


def test_the_web_path_is_put_next_to_the_tls_port_as_ratios_of_medians() -> None:
    def web_run(transport: str, repetition: int, rss: float, cpu: float) -> dict[str, Any]:
        figures = {
            "rss_per_connection_bytes": rss,
            "server_cpu_seconds_per_million_deliveries": cpu,
        }
        return {
            **run("Parley", repetition, figures),
            "workload": f"web-path C=300 R=20 {transport}",
            "kind": "web-path",
        }

    runs = []
    for repetition, (tls_cpu, ws_cpu) in enumerate([(2.0, 3.0), (4.0, 100.0), (3.0, 3.9)]):
        runs.append(web_run("tls", repetition, 20_000, tls_cpu))
        runs.append(web_run("websocket", repetition, 40_000, ws_cpu))
    (line,) = report.web_ratios(report.medians(runs))
    # Medians first (TLS 3.0, WebSocket 3.9), then the ratio: one noisy run does not swing it.
    assert line == (
        "web-path C=300 R=20, WebSocket/TLS (goal 1.5x or less): memory per idle connection "
        "2.00x (over the goal); server CPU per delivery 1.30x (within the goal)"
    )
    # A transport that failed every run has no ratio.
    assert "—x" in report.web_ratios(report.medians(runs[::2]))[0]
