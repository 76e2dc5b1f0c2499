"""The bus setting: a cluster needs PostgreSQL, and a bus that is not Redis is refused."""

from __future__ import annotations

from pathlib import Path

from e2e.processes import Process, environment


async def run_server(tmp_path: Path, *args: str) -> tuple[int, str]:
    server = await Process.start(
        "server.py", "--port", "0", "--data-dir", str(tmp_path / "data"), *args,
        env=environment(tmp_path),
    )  # fmt: skip
    status, out, err = await server.finish()
    return status, out + err


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


async def test_an_unreachable_bus_is_named_at_start(tmp_path: Path) -> None:
    from postgres_support import POSTGRES_URL

    status, output = await run_server(
        tmp_path, "--database", POSTGRES_URL, "--bus", "redis://127.0.0.1:1/0"
    )
    assert status == 2, output
    assert "Cannot reach the bus (Redis 127.0.0.1:1/0)" in output, output
    assert "Traceback" not in output
