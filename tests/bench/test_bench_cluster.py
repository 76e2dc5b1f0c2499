"""The cluster workload still runs end to end on the machine's PostgreSQL and Redis, and
produces every figure (a tiny run). Only the figures' presence is checked, never their values.
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
def test_the_cluster_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "cluster", "--json", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(results.read_text())
    assert {each["kind"] for each in data["runs"]} == {"cluster", "cluster-failover"}
    for each in data["runs"]:
        assert each["error"] is None, each["error"]
        shown = [key for key, _, _ in SHOWN[each["kind"]]]
        missing = [key for key in shown if not _is_number(each["figures"].get(key))]
        assert not missing, (each["workload"], missing)
    failover = next(each for each in data["runs"] if each["kind"] == "cluster-failover")
    # Members of the killed node were there to resume (the figure is not a vacuous zero).
    assert failover["figures"]["clients_on_killed_node"] > 0
    assert failover["figures"]["messages_acknowledged"] > 0
