"""``parley server`` started the way an operator starts it, with the mistakes operators make: each
refusal is one line on stderr naming the file, port or setting and what to do, with exit
status 2; nothing in the data dir is replaced or exposed.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import processes
import pytest
from processes import ROOT, Process, environment, start_client

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) parley")


_started: list[Process] = []


async def start_server(home: Path, *args: str) -> tuple[Process, int]:
    server, port = await processes.start_server(home, *args)
    _started.append(server)
    return server, port


@pytest.fixture(autouse=True)
async def _kill_leftovers() -> AsyncIterator[None]:
    """A server a failed test did not stop is killed, so the run goes on."""
    yield
    for server in _started:
        server.kill()
        await server.process.wait()
    _started.clear()


def parley(home: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m parley ARGS`` for a command that ends by itself."""
    return subprocess.run(
        [sys.executable, "-m", "parley", *args],
        cwd=cwd,
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refused(home: Path, *args: str, cwd: Path = ROOT) -> str:
    """Run ``parley server ARGS``, which must refuse to start; returns its one stderr line."""
    result = parley(home, "server", "--port", "0", *args, cwd=cwd)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Server is running" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in lines[0] and "[Errno" not in lines[0]
    return lines[0]


async def stopped(server: Process) -> str:
    server.signal(signal.SIGTERM)
    status, out, err = await server.finish()
    assert status == 0, err
    return out + err


def data_dir(home: Path) -> Path:
    return home / "data" / "parley"


# --- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "80000"], "--port: 80000 is out of range; it must be from 0 to 65535"),
        (["--port", "-1"], "--port: -1 is out of range"),
        (["--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
    ],
)
def test_a_wrong_option_is_refused(tmp_path: Path, args: list[str], expected: str) -> None:
    result = parley(tmp_path, "server", *args)
    assert result.returncode == 2
    assert expected in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alow_guests = false\n", "{}:alow_guests: unknown setting 'alow_guests'; did you "
         "mean 'allow_guests'?"),
        ('room_creation = "moderator"\n', "{}:room_creation: 'moderator' is not one of "
         "'everyone', 'accounts', 'moderators'."),
        ("files_port = 70000\n", "{}:files_port: 70000 is out of range"),
        ("history_on_join = -5\n", "{}:history_on_join: -5 is out of range"),
        ("hello_timeout_seconds = 0\n", "{}:hello_timeout_seconds: 0 is out of range; it "
         "must be more than 0"),
        ('log_level = "verbose"\n', "{}:log_level: 'verbose' is not one of"),
        ('sqlite_synchronous = "off"\n', "{}:sqlite_synchronous: 'off' is not one of "
         "'full', 'normal'."),
        ("port = = 1\n", "{}: not valid TOML"),
    ],
)  # fmt: skip
def test_a_settings_file_mistake_names_the_file_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    settings = tmp_path / "parley.toml"
    settings.write_text(text, encoding="utf-8")
    assert expected.format(settings) in refused(tmp_path, "--config", str(settings))


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    line = refused(tmp_path, "--config", str(tmp_path / "nope.toml"))
    assert f"--config {tmp_path / 'nope.toml'}: no such file" in line


def test_the_client_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    result = parley(tmp_path, "client", "--port", "99999")
    assert result.returncode == 2
    assert "argument --port: 99999 is not a port number (1 to 65535)" in result.stderr


async def test_a_good_settings_file_is_used(tmp_path: Path) -> None:
    settings = tmp_path / "parley.toml"
    settings.write_text('room_creation = "moderators"\nlog_level = "warning"\n')
    server, _ = await start_server(tmp_path, "--config", str(settings))
    assert "room_creation" not in await stopped(server)


# --- the certificate ----------------------------------------------------------------------


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    line = refused(tmp_path, "--cert", str(cert), "--key", str(key))
    assert line == (
        f"parley server: {cert}: no such file. Give the path of the server's PEM certificate, "
        "or leave out --cert and --key to use a self-signed pair made in the data dir."
    )


def test_a_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    line = refused(tmp_path, "--cert", str(cert), "--key", str(cert))
    assert f"{cert} is not a PEM certificate" in line and "--cert" in line


async def test_a_key_of_another_certificate_is_named(tmp_path: Path) -> None:
    for name in ("one", "two"):
        server, _ = await start_server(tmp_path / name)
        await stopped(server)
    cert, key = data_dir(tmp_path / "one") / "cert.pem", data_dir(tmp_path / "two") / "key.pem"
    line = refused(tmp_path, "--cert", str(cert), "--key", str(key))
    assert f"{key} is not the private key of the certificate {cert}" in line


def test_cert_without_key_is_refused(tmp_path: Path) -> None:
    line = refused(tmp_path, "--cert", str(tmp_path / "cert.pem"))
    assert "--cert was given without --key" in line


async def test_a_lost_certificate_never_replaces_the_private_key(tmp_path: Path) -> None:
    server, _ = await start_server(tmp_path)
    await stopped(server)
    folder = data_dir(tmp_path)
    key = (folder / "key.pem").read_bytes()
    (folder / "cert.pem").unlink()
    line = refused(tmp_path)
    assert f"{folder / 'cert.pem'} is missing but {folder / 'key.pem'} is there" in line
    assert "refusing to replace the private key" in line and "Restore cert.pem" in line
    assert (folder / "key.pem").read_bytes() == key
    assert not (folder / "cert.pem").exists()


# --- ports ---------------------------------------------------------------------------------


def _busy_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def test_a_busy_chat_port_is_named(tmp_path: Path) -> None:
    with _busy_port() as holder:
        port = holder.getsockname()[1]
        result = parley(tmp_path, "server", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"parley server: Port {port} (chat) is in use by another program: free it, or choose "
        "another port with --port."
    )


def test_a_busy_file_port_says_it_is_the_chat_port_plus_one(tmp_path: Path) -> None:
    with _busy_port() as holder:
        port = holder.getsockname()[1]
        result = parley(tmp_path, "server", "--port", str(port - 1))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"parley server: Port {port} (files: the chat port {port - 1} + 1) is in use by another "
        "program: free it, or choose another port with files_port in the settings file."
    )


# --- the data dir --------------------------------------------------------------------------


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.write_text("")
    line = refused(tmp_path, "--data-dir", str(folder))
    assert f"--data-dir {folder} is a file, not a directory" in line


async def test_the_data_is_private_from_the_first_start(tmp_path: Path) -> None:
    folder = tmp_path / "fresh" / "parley"
    old = os.umask(0o022)  # the usual login umask, inherited by the server
    try:
        server, port = await start_server(tmp_path, "--data-dir", str(folder))
    finally:
        os.umask(old)
    try:
        client = await start_client(tmp_path, port, "--nick", "Alice")
        await client.expect("Welcome to the chat!$")
        client.type("hello")
        client.end_input()
        assert (await client.finish())[0] == 0
        names = {path.name for path in folder.iterdir()}
        assert {"cert.pem", "key.pem", "parley.sqlite3", "parley.sqlite3-wal"} <= names
        for path in [folder, *folder.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    finally:
        await stopped(server)


async def test_a_data_dir_others_can_read_is_refused_with_the_chmod_to_run(
    tmp_path: Path,
) -> None:
    server, _ = await start_server(tmp_path)
    await stopped(server)
    folder = data_dir(tmp_path)
    (folder / "parley.sqlite3").chmod(0o644)
    line = refused(tmp_path)
    assert f"{folder / 'parley.sqlite3'} can be read by other users (mode 0644)" in line
    assert line.endswith(f"Run: chmod -R go-rwx {folder}")
    folder.chmod(0o755)
    assert f"{folder} can be read by other users (mode 0755)" in refused(tmp_path)
    subprocess.run(["chmod", "-R", "go-rwx", str(folder)], check=True)
    server, _ = await start_server(tmp_path)
    await stopped(server)


# --- the database --------------------------------------------------------------------------


def test_an_empty_database_file_is_not_a_new_server(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    folder.mkdir(parents=True, mode=0o700)
    (folder / "parley.sqlite3").touch(mode=0o600)
    line = refused(tmp_path)
    assert f"{folder / 'parley.sqlite3'} is empty (0 bytes)" in line
    assert "restore it from a backup" in line
    assert (folder / "parley.sqlite3").stat().st_size == 0


async def test_sqlite_urls_follow_the_three_and_four_slash_convention(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    server = await Process.start(
        str(ROOT / "server.py"),
        "--port",
        "0",
        "--database",
        "sqlite:///relative.db",
        env=environment(tmp_path),
        cwd=work,
    )
    _started.append(server)
    await server.expect(r"Server is running")
    await server.expect(f"Database: SQLite {re.escape(str(work / 'relative.db'))}$")
    await stopped(server)
    assert (work / "relative.db").is_file()
    absolute = tmp_path / "absolute.db"
    server, _ = await start_server(tmp_path, "--database", f"sqlite:///{absolute}")
    await server.expect(f"Database: SQLite {re.escape(str(absolute))}$")
    await stopped(server)
    assert absolute.is_file()


WAITS = r'SQLite commits wait for the disk \(sqlite_synchronous = "full"\)\.$'
DOES_NOT_WAIT = (
    r'SQLite commits do not wait for the disk \(sqlite_synchronous = "normal"\): a killed server '
    "loses no acknowledged message"
)


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("", WAITS),
        ('sqlite_synchronous = "full"\n', WAITS),
        ('sqlite_synchronous = "normal"\n', DOES_NOT_WAIT),
    ],
)
async def test_the_sqlite_durability_is_read_back_from_the_database(
    tmp_path: Path, setting: str, line: str
) -> None:
    # The line comes from PRAGMA synchronous on the server's own writing connection: the level
    # belongs to a connection, not to the file, so no other process could read it.
    settings = tmp_path / "parley.toml"
    settings.write_text(setting)
    server, _ = await start_server(tmp_path, "--config", str(settings))
    await server.expect(line)
    await stopped(server)


async def test_the_sqlite_durability_setting_comes_from_the_environment(tmp_path: Path) -> None:
    server = await Process.start(
        str(ROOT / "server.py"),
        "--port",
        "0",
        env={**environment(tmp_path), "PARLEY_SQLITE_SYNCHRONOUS": "normal"},
    )
    _started.append(server)
    await server.expect(DOES_NOT_WAIT)
    await stopped(server)


def test_a_bad_sqlite_durability_from_the_environment_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--port", "0"],
        env={**environment(tmp_path), "PARLEY_SQLITE_SYNCHRONOUS": "fsync"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout
    assert "PARLEY_SQLITE_SYNCHRONOUS: 'fsync' is not one of 'full', 'normal'." in result.stderr


def test_an_unreachable_postgresql_is_explained(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    line = refused(tmp_path, "--database", f"postgresql://parley@127.0.0.1:{port}/parley")
    assert line == (
        f"parley server: Cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; "
        "check that PostgreSQL runs there and that --database names the right host and port."
    )


def test_a_wrong_postgresql_user_is_explained(tmp_path: Path) -> None:
    line = refused(tmp_path, "--database", "postgresql://no_such_role@127.0.0.1:5432/test")
    assert 'Cannot connect to PostgreSQL at 127.0.0.1:5432: role "no_such_role"' in line
    assert "check the user, password and database name in --database" in line


# --- the first administrator ----------------------------------------------------------------


async def test_a_deleted_admin_stays_deleted(tmp_path: Path) -> None:
    server, _ = await start_server(tmp_path)
    out = await stopped(server)
    assert "Created the account 'admin' with password" in out
    # Not a terminal here: the operator is told the password went to the log.
    assert "This output is not a terminal" in out
    deleted = parley(tmp_path, "admin", "delete", "admin", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    server, _ = await start_server(tmp_path)
    out = await stopped(server)
    assert "password" not in out
    assert "0 account(s)" in parley(tmp_path, "admin", "users").stdout

    server, _ = await start_server(tmp_path, "--init-admin")
    assert "Created the account 'admin' with password" in await stopped(server)
    assert "admin  admin" in parley(tmp_path, "admin", "users").stdout
    server, _ = await start_server(tmp_path, "--init-admin")
    assert "password" not in await stopped(server)


# --- the log -------------------------------------------------------------------------------


async def test_log_lines_have_a_time_and_a_level(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path)
    client = await start_client(tmp_path, port, "--nick", "Alice")
    await client.expect("Welcome to the chat!$")
    client.end_input()
    await client.finish()
    logged = [line for line in (await stopped(server)).splitlines() if "Alice" in line]
    assert logged and all(TIMESTAMPED.match(line) for line in logged), logged
    assert any(" INFO parley" in line for line in logged)


async def test_log_level_warning_leaves_out_the_routine(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path, "--log-level", "warning")
    client = await start_client(tmp_path, port, "--nick", "Alice")
    await client.expect("Welcome to the chat!$")
    client.end_input()
    await client.finish()
    assert " INFO " not in await stopped(server)


async def test_log_level_debug_shows_failed_handshakes(tmp_path: Path) -> None:
    server, port = await start_server(tmp_path, "--log-level", "debug")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await server.expect(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ DEBUG parley[.\w]*: TLS handshake")
    await stopped(server)
