"""The benchmark still runs and prints figures (a tiny run; no figure is judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_idle_connection_benchmark_produces_figures(tmp_path: Path) -> None:
    results = tmp_path / "idle.json"
    run = subprocess.run(
        [
            sys.executable,
            "bench/idle_connections.py",
            "--connections",
            "20",
            "--json",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "RSS/conn" in run.stdout
    (row,) = json.loads(results.read_text())
    assert row["connections"] == 20
    for key in (
        "rss_per_connection_bytes",
        "server_cpu_ms_per_handshake",
        "connect_p50_ms",
        "connect_p99_ms",
    ):
        assert isinstance(row[key], float)
