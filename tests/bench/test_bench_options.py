"""The benchmark's command line: chosen fan-out sizes, and settings for every Parley run."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.__main__ import parley_settings, parse_args, plan

from bench import servers


def test_fan_out_sizes_replace_the_usual_ones() -> None:
    args = parse_args(["--only", "fanout", "--fan-out", "1000:200", "--fan-out", "50:20"])
    assert [step.label for step in plan(args)] == ["fan-out C=1000 R=200", "fan-out C=50 R=20"]
    assert [step.label for step in plan(parse_args(["--only", "fanout"]))] == [
        "fan-out C=100 R=20",
        "fan-out C=1000 R=20",
        "fan-out C=1000 R=200",
    ]


@pytest.mark.parametrize("size", ["1000", "1000:x", "0:20", "10:-1"])
def test_a_bad_fan_out_size_is_refused(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--fan-out", size])
    assert exit_.value.code == 2
    assert f"argument --fan-out: {size!r}" in capsys.readouterr().err


def test_a_parley_setting_reaches_the_server_configuration() -> None:
    args = parse_args(
        ["--only", "persistence", "--parley-setting", 'sqlite_synchronous = "normal"']
    )
    step = plan(args)[0]
    server = servers.ParleyServer(Path(__file__).resolve().parents[2], parley_settings(step, args))
    try:
        server.command()
        written = (server.workdir / "parley.toml").read_text()
    finally:
        server.stop()
    # The workload's own settings stay, and the one asked for is added.
    assert 'sqlite_synchronous = "normal"' in written
    assert step.settings.strip().splitlines()[0] in written
