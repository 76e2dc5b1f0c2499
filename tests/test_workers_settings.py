"""The ``workers`` setting: bad values and settings it cannot run with are refused at start,
naming the setting, before anything listens; and what each worker is given.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.processes import ROOT, environment
from parley.config import ServerConfig
from parley.server.workers import Ports, problem, worker_config

POSTGRES = "postgresql://parley@127.0.0.1:5432/never_opened"
REDIS = "redis://127.0.0.1:6379/0"


def start(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``server.py`` with ``args``; its exit status and stderr (it must not start)."""
    done = subprocess.run(
        [sys.executable, "server.py", "--port", "0", "--data-dir", str(home / "data"), *args],
        cwd=ROOT,
        env={**environment(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("0", "--workers: 0 is out of range; it must be from 1 to 256"),
        ("-1", "--workers: -1 is out of range; it must be from 1 to 256"),
        ("100000", "--workers: 100000 is out of range; it must be from 1 to 256"),
        ("abc", "argument --workers: 'abc' is not a whole number"),
        ("2.5", "argument --workers: '2.5' is not a whole number"),
    ],
)
def test_a_bad_count_on_the_command_line_is_refused(tmp_path: Path, value: str, said: str) -> None:
    status, err = start(tmp_path, "--workers", value, "--database", POSTGRES, "--bus", REDIS)
    assert status == 2
    assert said in err, err


def test_a_bad_count_in_the_environment_or_the_file_is_refused(tmp_path: Path) -> None:
    status, err = start(tmp_path, env={"PARLEY_WORKERS": "many"})
    assert status == 2
    assert "PARLEY_WORKERS: 'many' is not a whole number" in err, err
    settings = tmp_path / "server.toml"
    settings.write_text('workers = "4"\n')
    status, err = start(tmp_path, "--config", str(settings))
    assert status == 2
    assert f"{settings}:workers: '4' is not a whole number" in err, err


def test_several_workers_need_a_bus_and_postgresql(tmp_path: Path) -> None:
    status, err = start(tmp_path, "--workers", "2")
    assert status == 2
    assert "workers (--workers, PARLEY_WORKERS or workers in the settings file) is 2" in err
    assert "no bus is set. Set bus (--bus, PARLEY_BUS" in err, err
    status, err = start(tmp_path, "--workers", "2", "--bus", REDIS)
    assert status == 2
    assert "the database is SQLite, which only one process can serve" in err, err
    assert "Set database (--database, PARLEY_DATABASE" in err, err


def test_config_check_reports_workers_without_a_bus(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parley", "config", "check", "--workers", "3",
         "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert re.search(r"^workers += 3 +# --workers$", done.stdout, re.MULTILINE), done.stdout
    assert "no bus is set" in done.stderr, done.stderr


def test_a_chat_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "server.py", "--port", str(port), "--workers", "2",
             "--data-dir", str(tmp_path / "data"), "--database", POSTGRES, "--bus", REDIS],
            cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"Port {port} (chat) is in use by another program" in done.stderr, done.stderr


def test_a_chat_port_other_workers_listen_on_is_named(tmp_path: Path) -> None:
    # Another set of workers shares its port with SO_REUSEPORT: joining it would split the
    # users between two servers that know nothing of each other.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "server.py", "--port", str(port), "--workers", "2",
             "--data-dir", str(tmp_path / "data"), "--database", POSTGRES, "--bus", REDIS],
            cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"Port {port} (chat) is in use by another program" in done.stderr, done.stderr


def test_each_worker_shares_the_ports_and_has_a_metrics_port_of_its_own() -> None:
    config = ServerConfig(port=0, metrics_listen="[::1]:9976", database=POSTGRES, bus=REDIS)
    ports = Ports(chat=7000, files=7001, web=8443)
    second = worker_config(config, 2, ports)
    assert (second.port, second.files_port, second.web_port) == (7000, 7001, 8443)
    assert second.metrics_listen == "[::1]:9977"
    assert config.metrics_listen == "[::1]:9976"  # the parent's own settings are untouched
    config.metrics_listen = "127.0.0.1:0"
    assert worker_config(config, 3, ports).metrics_listen == "127.0.0.1:0"


def test_metrics_ports_past_65535_are_refused() -> None:
    config = ServerConfig(workers=4, metrics_listen="127.0.0.1:65534", database=POSTGRES, bus=REDIS)
    found = problem(config)
    assert found is not None and "metrics_listen 127.0.0.1:65534" in found, found
    config.workers = 2
    assert problem(config) is None
