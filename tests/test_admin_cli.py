"""``parley admin`` as an operator runs it: a real process, passwords on stdin, against the
same database a running server uses."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import RawClient, raw_user

PASSWORD = "correct horse battery"


def admin(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", "admin", "--data-dir", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_list_role_and_delete(tmp_path: Path) -> None:
    created = admin(tmp_path, "create", "Carol", "--role", "moderator", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout + created.stderr
    listing = admin(tmp_path, "users")
    assert "Carol" in listing.stdout and "moderator" in listing.stdout
    again = admin(tmp_path, "create", "carol", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "exists already" in again.stderr
    look_alike = admin(tmp_path, "create", "CaroI", stdin=PASSWORD + "\n")  # capital I
    assert look_alike.returncode == 1
    assert "CaroI looks like the account Carol" in look_alike.stderr
    assert admin(tmp_path, "role", "CAROL", "admin").returncode == 0
    assert "admin" in admin(tmp_path, "users").stdout
    refused = admin(tmp_path, "delete", "Carol")  # stdin is not a terminal: --yes required
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert admin(tmp_path, "delete", "Carol", "--yes").returncode == 0
    assert "Carol" not in admin(tmp_path, "users").stdout
    log = admin(tmp_path, "audit").stdout
    for action in ("create-account Carol", "set-role Carol", "delete-account Carol"):
        assert action in log


def test_bad_input_is_refused_with_a_message(tmp_path: Path) -> None:
    cases = [
        (("create", "bad name"), PASSWORD, "not a valid nickname"),
        (("create", "Dave"), "short", "8-256"),
        (("create", "Dave"), "", "8-256"),
        (("reset", "Nobody"), PASSWORD, "no account"),
        (("role", "Nobody", "admin"), "", "no account"),
        (("retention", "#nowhere", "7"), "", "no room"),
        (("retention", "not-a-room", "7"), "", "not a valid room name"),
    ]
    for args, stdin, words in cases:
        result = admin(tmp_path, *args, stdin=stdin + "\n")
        assert result.returncode == 1, (args, result.stdout)
        assert words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    bad_role = admin(tmp_path, "role", "Dave", "emperor")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr


async def test_it_works_beside_a_running_server(server_config: ServerConfig) -> None:
    data = server_config.data_dir
    async with ParleyServer(server_config) as server:
        alice = await raw_user(server.port, "Alice")
        token = (await alice.request("register", password=PASSWORD))["token"]
        await alice.request("join", room="#dev")
        await alice.close()
        # A reset revokes the saved login and sets a password the server then accepts.
        reset = admin(data, "reset", "alice", stdin="a brand new password\n")
        assert reset.returncode == 0, reset.stderr
        assert "1 saved login(s) revoked" in reset.stdout
        client = await RawClient.open(server.port)
        assert (await client.try_login("Alice", token=token))["code"] == "session-expired"
        ok = await client.request("nick", nick="Alice", password="a brand new password")
        assert ok["type"] == "ok"
        await client.close()
        # A new moderator may moderate at once (roles are read at login).
        assert (
            admin(data, "create", "Mod", "--role", "moderator", stdin=PASSWORD + "\n").returncode
            == 0
        )
        mod = await raw_user(server.port, "Mod", password=PASSWORD)
        assert (await mod.request("mute", room="#dev", nick="Alice"))["type"] == "ok"
        await mod.close()
        assert admin(data, "retention", "#DEV", "7").returncode == 0
        room = await server.storage.room("#dev")
        assert room is not None and room.retention_days == 7
        assert "mute Alice in #dev" in admin(data, "audit").stdout


def test_random_password_is_printed_once(tmp_path: Path) -> None:
    made = admin(tmp_path, "create", "Erin", "--random-password")
    assert made.returncode == 0
    line = next(line for line in made.stdout.splitlines() if line.startswith("Password for"))
    assert len(line.split(": ", 1)[1]) >= 20


def test_the_options_may_come_after_the_action(tmp_path: Path) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "parley", "admin", "create", "Carol", "--data-dir", str(tmp_path)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    # Made private whatever the umask, so that the server accepts the data dir afterwards.
    assert stat.S_IMODE((tmp_path / "parley.sqlite3").stat().st_mode) == 0o600
    listed = subprocess.run(
        [sys.executable, "-m", "parley", "admin", "users", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "Carol" in listed.stdout
    # Given in both places, the one after the action wins.
    elsewhere = tmp_path / "elsewhere"
    both = admin(elsewhere, "users", "--data-dir", str(tmp_path))
    assert "Carol" in both.stdout
    assert not (elsewhere / "parley.sqlite3").exists()


def test_an_empty_standard_input_is_named_not_taken_for_a_short_password(tmp_path: Path) -> None:
    assert admin(tmp_path, "create", "Frank", stdin=PASSWORD + "\n").returncode == 0
    for command in (("create", "Grace"), ("reset", "Frank")):
        done = admin(tmp_path, *command, stdin="")
        assert done.returncode != 0
        assert "standard input was empty" in done.stderr, done.stderr
        assert "--random-password" in done.stderr
    # An empty line is a password, and a too short one.
    done = admin(tmp_path, "reset", "Frank", stdin="\n")
    assert "8-256 characters" in done.stderr, done.stderr


def test_a_data_dir_without_a_database_is_named_not_taken_for_an_empty_server(
    tmp_path: Path,
) -> None:
    mistyped = tmp_path / "typo"
    for command in (("users",), ("audit",), ("reset", "Frank"), ("role", "Frank", "moderator")):
        done = admin(mistyped, *command, stdin=PASSWORD + "\n")
        assert done.returncode != 0
        assert f"There is no Parley database at {mistyped}" in done.stderr, done.stderr
    assert not mistyped.exists()  # nothing was made there
    assert admin(mistyped, "create", "Frank", stdin=PASSWORD + "\n").returncode == 0
    assert "Frank" in admin(mistyped, "users").stdout
