"""The real server's log as JSON in a file: one object per line with structured fields, no
message text, password or token in it, and a new file when logrotate moves the old one away.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from processes import Process, environment

from support import RawClient, raw_user

MESSAGE_MARKER = "zebra-quartz-7731"
PASSWORD = "pw-marker-5519-long-enough"

_started: list[Process] = []


@pytest.fixture(autouse=True)
async def _kill_leftovers() -> AsyncIterator[None]:
    yield
    for server in _started:
        server.kill()
        await server.process.wait()
    _started.clear()


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def wait_for_record(path: Path, **fields: Any) -> dict[str, Any]:
    """The first record of ``path`` with ``fields``, waiting for it up to 10 s."""
    for _ in range(200):
        if path.exists():
            for record in records(path):
                if all(record.get(key) == value for key, value in fields.items()):
                    return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"no record with {fields} in {path}")


async def test_json_lines_with_fields_and_nothing_secret(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    env = environment(tmp_path) | {
        "PARLEY_LOG_FORMAT": "json",
        "PARLEY_LOG_FILE": str(log_file),
        "PARLEY_LOG_LEVEL": "debug",
    }
    server = await Process.start("-m", "parley", "server", "--port", "0", env=env)
    _started.append(server)
    port = int((await server.expect(r"Server is running on 127\.0\.0\.1:(\d+)")).group(1))

    alice = await raw_user(port, "Alice")
    registered = await alice.request("register", password=PASSWORD)
    assert registered["type"] == "ok", registered
    token = registered["token"]
    bob = await raw_user(port, "Bob")
    sent = await alice.request("send", to="#general", text=MESSAGE_MARKER, msg_id="m1")
    assert sent["type"] == "sent"
    await bob.event("message", text=MESSAGE_MARKER)
    await bob.request("send", to="Alice", text=f"private {MESSAGE_MARKER}", msg_id="m2")
    intruder = await RawClient.open(port)
    refused = await intruder.try_login("Alice", password=PASSWORD + "-wrong")
    assert refused["type"] == "error"
    await wait_for_record(log_file, event="login_failed", nick_key="alice")

    server.signal(signal.SIGTERM)
    status, out, err = await server.finish()
    assert status == 0, err
    text = log_file.read_text(encoding="utf-8")
    for secret in (MESSAGE_MARKER, PASSWORD, token):
        assert secret not in text
        assert secret not in out + err
    lines = records(log_file)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert all(line["ts"].endswith("Z") for line in lines)
    connected = [line for line in lines if line["message"].startswith("Connected with")]
    assert connected and all(line["peer"].startswith("('127.0.0.1', ") for line in connected)
    login = next(line for line in lines if line.get("event") == "login")
    assert login["nick_key"] == "alice" and login["level"] == "info"
    assert any(line.get("event") == "register" and line["nick_key"] == "alice" for line in lines)
    failed = next(line for line in lines if line.get("event") == "login_failed")
    assert failed["peer"].startswith("127.0.0.1")
    # Nothing but the start-up lines on stdout: the log went to its file.
    assert not any(line.startswith("{") for line in out.splitlines())


async def test_a_rotated_log_file_is_opened_again(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    settings = tmp_path / "server.toml"
    settings.write_text(f'log_file = "{log_file}"\n')
    server = await Process.start(
        "-m",
        "parley",
        "server",
        "--port",
        "0",
        "--config",
        str(settings),
        env=environment(tmp_path),
    )
    _started.append(server)
    port = int((await server.expect(r"Server is running on 127\.0\.0\.1:(\d+)")).group(1))
    first = await raw_user(port, "Alice")
    await first.close()
    rotated = tmp_path / "server.log.1"
    for _ in range(200):
        if "Disconnected" in log_file.read_text():
            break
        await asyncio.sleep(0.05)
    log_file.rename(rotated)  # what logrotate does (without copytruncate)
    second = await raw_user(port, "Bob")
    await second.close()
    for _ in range(200):
        if log_file.exists() and "Bob" in log_file.read_text():
            break
        await asyncio.sleep(0.05)
    assert "Bob" in log_file.read_text()
    assert "Alice" in rotated.read_text() and "Bob" not in rotated.read_text()
    # Text lines, as before: UTC time stamp, level, logger.
    assert log_file.read_text().startswith(tuple(f"20{n}" for n in range(10)))
    server.signal(signal.SIGTERM)
    status, _, err = await server.finish()
    assert status == 0, err


def test_a_log_file_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    from processes import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "parley", "server", "--port", "0"],
        cwd=ROOT,
        env=environment(tmp_path) | {"PARLEY_LOG_FILE": str(tmp_path / "missing" / "x.log")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"parley server: log_file {tmp_path / 'missing' / 'x.log'}: cannot be opened for "
        "writing (No such file or directory): check the directory exists and the server's "
        "user may write it."
    )


async def test_sighup_moves_the_log_to_a_file_as_json(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    settings = tmp_path / "server.toml"
    # First a log file that cannot be opened: logged, and the log stays on stdout.
    settings.write_text('log_format = "text"\n')
    server = await Process.start(
        "-m",
        "parley",
        "server",
        "--port",
        "0",
        "--config",
        str(settings),
        env=environment(tmp_path),
    )
    _started.append(server)
    port = int((await server.expect(r"Server is running on 127\.0\.0\.1:(\d+)")).group(1))
    settings.write_text(f'log_file = "{tmp_path / "missing" / "x.log"}"\n')
    server.signal(signal.SIGHUP)
    line = await server.expect(r".* ERROR parley\.server: Reload: log_file ")
    assert "cannot be opened (No such file or directory); the log stays as it was" in line.string
    await server.expect(r".* INFO parley\.server: Reloaded the settings; changed: none")

    settings.write_text(f'log_file = "{log_file}"\nlog_format = "json"\n')
    server.signal(signal.SIGHUP)
    await wait_for_record(log_file, message="Reloaded the settings; changed: log_format, log_file")
    client = await raw_user(port, "Alice")
    await wait_for_record(log_file, event="login", nick_key="alice")
    await client.close()
    server.signal(signal.SIGTERM)
    status, out, err = await server.finish()
    assert status == 0, err
    assert "Alice" not in out  # no longer on stdout
