"""The bus setting: a cluster needs PostgreSQL and one certificate, and a bus that is not Redis
is refused; ``parley config check`` reports the same refusals in the same words.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cluster_support import REDIS_URL, shared_certificate

from e2e.processes import ROOT, Process, environment
from postgres_support import postgres_database


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async for url in postgres_database():
        yield url


async def run_server(tmp_path: Path, *args: str) -> tuple[int, str]:
    server = await Process.start(
        "server.py", "--port", "0", "--data-dir", str(tmp_path / "data"), *args,
        env=environment(tmp_path),
    )  # fmt: skip
    status, out, err = await server.finish()
    return status, out + err


def config_check(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """``parley config check`` with the server's arguments: its status and problem lines."""
    result = subprocess.run(
        [sys.executable, "-m", "parley", "config", "check", "--data-dir", str(tmp_path / "data"),
         *args],
        cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    prefix = "parley config: "
    problems = [line[len(prefix) :] for line in result.stderr.splitlines() if prefix in line]
    return result.returncode, problems


def refusal(output: str) -> str:
    """The server's one line of refusal, without its ``parley server: ``."""
    [line] = [line for line in output.splitlines() if line.startswith("parley server: ")]
    return line.removeprefix("parley server: ")


async def test_a_bus_with_sqlite_is_refused_naming_the_settings(tmp_path: Path) -> None:
    status, output = await run_server(tmp_path, "--bus", "redis://127.0.0.1:6379/0")
    assert status == 2, output
    assert "SQLite" in output
    assert "--database" in output and "PARLEY_DATABASE" in output and "--bus" in output
    assert "Server is running" not in output


async def test_a_bus_that_is_not_redis_is_refused(tmp_path: Path) -> None:
    status, output = await run_server(tmp_path, "--bus", "http://127.0.0.1:6379/0")
    assert status == 2, output
    assert "--bus" in output and "redis://HOST:PORT/DB" in output, output


async def test_an_unreachable_bus_is_named_at_start(tmp_path: Path, database: str) -> None:
    status, output = await run_server(
        tmp_path, "--database", database, "--bus", "redis://127.0.0.1:1/0",
        *shared_certificate(tmp_path),
    )  # fmt: skip
    assert status == 2, output
    assert "Cannot reach the bus (Redis 127.0.0.1:1/0)" in output, output
    assert "Traceback" not in output


async def test_a_node_with_a_bus_starts_with_the_certificate_it_is_given(
    tmp_path: Path, database: str
) -> None:
    certificate = shared_certificate(tmp_path)
    server = await Process.start(
        "server.py", "--port", "0", "--data-dir", str(tmp_path / "data"),
        "--database", database, "--bus", REDIS_URL, *certificate,
        env=environment(tmp_path),
    )  # fmt: skip
    try:
        await server.expect(r"Server is running on")
        await server.expect(r"Bus: Redis ")
    finally:
        server.signal()
        status, output, err = await server.finish()
    assert status == 0, output + err
    # Its own pair was never made: the one given is the one every node presents.
    assert not (tmp_path / "data" / "cert.pem").exists()
    assert not (tmp_path / "data" / "key.pem").exists()


async def test_a_bus_without_a_certificate_is_refused_naming_the_settings(
    tmp_path: Path, database: str
) -> None:
    status, output = await run_server(tmp_path, "--database", database, "--bus", REDIS_URL)
    assert status == 2, output
    for setting in ("--bus", "cert_file", "key_file", "--cert", "--key", "PARLEY_CERT_FILE"):
        assert setting in output, (setting, output)
    assert "certificate changed" in output or "the certificate changed" in output, output
    assert "same certificate and key" in output, output
    assert "Server is running" not in output
    # Refused before a self-signed pair of this node's own was made.
    assert not (tmp_path / "data" / "cert.pem").exists()
    assert not (tmp_path / "data" / "key.pem").exists()


async def test_config_check_reports_a_bus_with_sqlite_and_without_a_certificate(
    tmp_path: Path, database: str
) -> None:
    status, problems = config_check(tmp_path, "--bus", REDIS_URL)
    assert status == 1, problems
    # Both at once (a start stops at the first), each as the server words it.
    assert len(problems) == 2, problems
    status, output = await run_server(tmp_path, "--bus", REDIS_URL)
    assert status == 2 and refusal(output) == problems[0], (output, problems)
    assert "SQLite" in problems[0] and "PARLEY_DATABASE" in problems[0]
    status, output = await run_server(tmp_path, "--database", database, "--bus", REDIS_URL)
    assert status == 2 and refusal(output) == problems[1], (output, problems)

    # PostgreSQL and a certificate given: nothing to report about the bus.
    status, problems = config_check(
        tmp_path, "--database", database, "--bus", REDIS_URL, *shared_certificate(tmp_path)
    )
    assert (status, problems) == (0, []), problems
