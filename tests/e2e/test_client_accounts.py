"""Accounts through the real client over pipes: register, saved logins, passwords never shown.

Each user has a home of their own (XDG dirs), like a computer of their own: saved logins live
in ``data/parley/sessions.json`` there.
"""

from __future__ import annotations

import stat
from pathlib import Path

from processes import Lab, Process

from support import raw_user

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple gun 42 quietly"
WRONG = "hunter2-hunter2"


def _sessions(lab: Lab, home: str) -> Path:
    return lab.home(home) / "data" / "parley" / "sessions.json"


async def _finish(client: Process) -> str:
    """Exit with /exit; returns everything the client printed, stdout and stderr."""
    client.type("/exit")
    status, out, err = await client.finish()
    assert status == 0, (out, err)
    return out + "\n" + err


async def test_register_then_the_saved_login_needs_no_password(lab: Lab) -> None:
    await lab.start_server()
    printed = []
    alice = await lab.client("alice", "--nick", "Alice")
    await alice.expect("Welcome to the chat!$")
    alice.type("/register")
    await alice.expect("Password: $")
    alice.type(PASSWORD)
    await alice.expect("Password again: $")
    alice.type(PASSWORD)
    await alice.expect(
        r"Registered Alice\. This computer logs in without the password from now on; "
        r"/logout forgets it\.$"
    )
    printed.append(await _finish(alice))
    sessions = _sessions(lab, "alice")
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o600
    assert "Alice" in sessions.read_text() and PASSWORD not in sessions.read_text()

    # The same computer again, the nickname in any case: the saved login, no question asked.
    alice = await lab.client("alice")
    alice.type("ALICE")
    await alice.expect("Enter your nickname: ALICE$")
    await alice.expect("Welcome to the chat!$")
    alice.type("/passwd")
    await alice.expect("Current password: $")
    alice.type(PASSWORD)
    await alice.expect("New password: $")
    alice.type(NEW_PASSWORD)
    await alice.expect("New password again: $")
    alice.type(NEW_PASSWORD)
    await alice.expect(r"Password changed\. Your other sessions were logged out\.$")
    output = await _finish(alice)
    assert output.splitlines()[:2] == ["Enter your nickname: ALICE", "Welcome to the chat!"]
    printed.append(output)

    # Another computer has no saved login: the password is asked for, the new one.
    other = await lab.client("elsewhere")
    other.type("alice")
    await other.expect(r"That nickname is registered: give its password\.$")
    await other.expect("Password: $")
    other.type(PASSWORD)  # the old one no longer works
    await other.expect(r"Wrong nickname or password\.$")
    status, out, err = await other.finish()
    assert status == 4 and "The password for alice was refused. Not logged in." in err
    printed.append(out + err)
    other = await lab.client("elsewhere")
    other.type("alice")
    await other.expect("Password: $")
    other.type(NEW_PASSWORD)
    await other.expect("Welcome to the chat!$")
    other.type("/logout")
    await other.expect(r"Logged out\. The saved login was deleted\.$")
    status, out, err = await other.finish()
    assert status == 0
    assert "connection" not in out  # leaving on purpose is not a lost connection
    printed.append(out + err)
    assert "alice" not in _sessions(lab, "elsewhere").read_text()

    # Logging out there revoked only that session: this computer still gets in.
    alice = await lab.client("alice", "--nick", "Alice")
    await alice.expect("Welcome to the chat!$")
    printed.append(await _finish(alice))

    printed.append(await lab.stop())
    for output in printed:
        for secret in (PASSWORD, NEW_PASSWORD):
            assert secret not in output


async def test_a_revoked_saved_login_asks_for_the_password_and_is_replaced(lab: Lab) -> None:
    port = await lab.start_server()
    bob = await lab.client("bob", "--nick", "Bob")
    await bob.expect("Welcome to the chat!$")
    bob.type("/register")
    bob.type(PASSWORD)
    bob.type(PASSWORD)
    await bob.expect("Registered Bob")
    await _finish(bob)
    saved = _sessions(lab, "bob").read_text()
    # A password change elsewhere revokes every saved login.
    raw = await raw_user(port, "Bob", password=PASSWORD)
    assert (await raw.request("passwd", old=PASSWORD, new=NEW_PASSWORD))["type"] == "ok"
    await raw.close()

    bob = await lab.client("bob", "--nick", "Bob")
    await bob.expect(r"The saved login has expired or was revoked; give the password\.$")
    await bob.expect("Password: $")
    bob.type(NEW_PASSWORD)
    await bob.expect("Welcome to the chat!$")
    assert NEW_PASSWORD not in await _finish(bob)
    assert _sessions(lab, "bob").read_text() != saved  # the new login is saved instead
    bob = await lab.client("bob", "--nick", "Bob")
    await bob.expect("Welcome to the chat!$")
    await _finish(bob)


async def test_a_wrong_password_from_a_pipe_ends_the_client(lab: Lab) -> None:
    port = await lab.start_server()
    raw = await raw_user(port, "Bob")
    assert (await raw.request("register", password=PASSWORD))["type"] == "ok"
    await raw.close()
    watcher = await lab.guest("Watcher")
    client = await lab.client("mallory", "--nick", "Bob")
    await client.expect(r"That nickname is registered: give its password\.$")
    await client.expect("Password: $")
    # A script's password, then its messages: those must never be taken as more attempts,
    # nor sent under another name.
    client.type(WRONG)
    client.type("first message")
    client.type("second message")
    client.end_input()
    status, out, err = await client.finish()
    assert status == 4
    assert err.strip().endswith("\nparley client: The password for Bob was refused. Not logged in.")
    assert "Welcome" not in out and WRONG not in out + err
    watcher.type("/exit")
    _, seen, _ = await watcher.finish()
    assert "message" not in seen


async def test_from_a_pipe_a_refused_nickname_ends_the_client(lab: Lab, tmp_path: Path) -> None:
    # The script's next line is a message: it must not become a nickname, nor be sent as one.
    config = tmp_path / "server.toml"
    config.write_text("allow_guests = false\n")
    await lab.start_server("--config", str(config))
    client = await lab.client("guest", "--nick", "Guest")
    await client.expect(r"This server requires an account: log in with a registered ")
    client.type("my first message")
    status, output, err = await client.finish()
    assert status == 4
    assert "requires an account" in err and "Not logged in." in err
    assert "Enter your nickname" not in output and "Welcome" not in output


async def test_registering_checks_the_password_before_sending_it(lab: Lab) -> None:
    await lab.start_server()
    client = await lab.client("carol", "--nick", "Carol")
    await client.expect("Welcome to the chat!$")
    client.type("/register " + PASSWORD)
    await client.expect(r"Usage: /register \(the password is asked for; never type it")
    # Too short, typed twice as asked: refused only once both are in, so the second entry
    # never reaches the chat line.
    client.type("/register")
    client.type("short")
    client.type("short")
    await client.expect(r"\*\*\* Passwords are 8-256 characters\. Nothing was changed\.$")
    client.type("/register")
    client.type(PASSWORD)
    client.type(PASSWORD + "!")
    await client.expect(r"\*\*\* The passwords do not match; nothing was changed\.$")
    client.type("/passwd")
    await client.expect(r"\*\*\* Only an account has a password: /register first\.$")
    client.type("/unread")
    await client.expect(r"\*\*\* Read markers are kept for accounts\.$")
    output = await _finish(client)
    assert PASSWORD not in output and "short" not in output
    assert not _sessions(lab, "carol").exists()
