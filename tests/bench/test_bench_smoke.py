"""The benchmark still runs end to end and produces every figure (a tiny run, Parley only).

Only the presence and the types of the figures are checked, never their values: timings on a
shared machine are not something a test can judge.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.report import SHOWN

ROOT = Path(__file__).resolve().parents[2]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(180)
def test_the_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "deliveries/s" in run.stdout
    assert "WebSocket/TLS (goal 1.5x or less)" in run.stdout
    data = json.loads(results.read_text())

    assert data["meta"]["servers"] == ["Parley"]
    assert {each["kind"] for each in data["runs"]} == {
        "fan-out",
        "capacity",
        "idle",
        "room-setup",
        "persistence",
        "terminal",
        "files",
        "history",
        "web-path",
    }
    for each in data["runs"]:
        assert each["server"] == "Parley"
        assert each["error"] is None
        shown = [key for key, _, _ in SHOWN[each["kind"]]]
        if each["kind"] == "capacity":
            # The peak or the failing step may not exist (then null), but every step measured
            # has its figures.
            assert all(
                each["figures"][key] is None or _is_number(each["figures"][key]) for key in shown
            )
            assert each["details"]["steps"]
            for step in each["details"]["steps"]:
                assert _is_number(step["deliveries_per_second"]), step
                assert _is_number(step["server_cores_busy"]), step
        else:
            missing = [key for key in shown if not _is_number(each["figures"].get(key))]
            assert not missing, (each["workload"], missing)
    assert set(data["medians"]) == {each["workload"] for each in data["runs"]}
    assert all(set(by_server) == {"Parley"} for by_server in data["medians"].values())
