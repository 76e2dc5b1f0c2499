"""The benchmark still runs and produces figures (a tiny run; no figure is judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert "deliveries/s" in run.stdout
    assert "RSS per connection" in run.stdout
    data = json.loads(results.read_text())
    workloads = {run["kind"] for run in data["runs"]}
    assert workloads == {"fan-out", "capacity", "idle"}
    for each in data["runs"]:
        assert each["server"] == "Parley"
        numbers = {key: value for key, value in each["figures"].items() if key != "steps"}
        assert numbers
        assert all(isinstance(value, int | float) for value in numbers.values()), numbers
    fan_out = next(run["figures"] for run in data["runs"] if run["kind"] == "fan-out")
    assert fan_out["messages_sent"] > 0
    assert fan_out["deliveries"] > 0
    idle = next(run["figures"] for run in data["runs"] if run["kind"] == "idle")
    assert idle["connections"] == 20
    assert set(data["medians"]) == {run["workload"] for run in data["runs"]}
