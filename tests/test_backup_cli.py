"""``parley admin backup`` and ``restore`` as an operator runs them (real processes), in the
cases that must be refused: each refusal exits 1 with one line naming the path, and leaves
what was there as it was."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from parley.storage import RunStart
from parley.storage.factory import DEFAULT_FILE
from parley.storage.sqlite import MIGRATIONS, SqliteStorage
from support import raw_user

PASSWORD = "correct horse battery"


def admin(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", "admin", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data dir with an account, a room message and a certificate pair."""
    data = tmp_path / "data"
    assert admin("create", "Carol", "--data-dir", data, stdin=PASSWORD + "\n").returncode == 0
    (data / "cert.pem").write_text("certificate\n")
    (data / "key.pem").write_text("private key\n")
    return data


@pytest.fixture
def backup(data: Path, tmp_path: Path) -> Path:
    made = admin("backup", tmp_path / "backup", "--data-dir", data)
    assert made.returncode == 0, made.stderr
    return tmp_path / "backup"


def test_a_backup_restores_into_a_new_data_dir(backup: Path, tmp_path: Path) -> None:
    restored = admin("restore", backup, "--data-dir", tmp_path / "new")
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "new" / "key.pem").read_text() == "private key\n"
    assert "Carol" in admin("users", "--data-dir", tmp_path / "new").stdout


async def test_a_restore_raises_the_history_epoch(backup: Path, tmp_path: Path) -> None:
    """Clients were shown messages after the backup; its seqs will be given out again."""
    assert admin("restore", backup, "--data-dir", tmp_path / "new").returncode == 0
    storage = await SqliteStorage.open(tmp_path / "new" / DEFAULT_FILE)
    try:
        # Raised by the restore, not by the start: no unclean run is recorded.
        assert await storage.start_run() == RunStart(1, raised=False)
    finally:
        await storage.close()
    # The backup itself is left as it was.
    source = await SqliteStorage.open(backup / DEFAULT_FILE)
    try:
        assert await source.start_run() == RunStart(0)
    finally:
        await source.close()


def test_a_destination_that_is_not_empty_is_refused(data: Path, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    refused(admin("backup", dest, "--data-dir", data), str(dest), "not empty")
    assert [path.name for path in dest.iterdir()] == ["notes.txt"]
    # An empty one is fine.
    (dest / "notes.txt").unlink()
    assert admin("backup", dest, "--data-dir", data).returncode == 0
    assert (dest / "parley-backup.json").is_file()


def test_an_unwritable_destination_is_refused_and_leaves_nothing(
    data: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    refused(admin("backup", blocker / "backup", "--data-dir", data), str(blocker))
    refused(admin("backup", blocker, "--data-dir", data), str(blocker), "not a directory")
    made = admin("backup", tmp_path / "b", "--data-dir", data)
    assert made.returncode == 0, made.stderr
    refused(admin("restore", tmp_path / "b", "--data-dir", blocker / "new"), str(blocker))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file", "b", "data"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_destination_that_cannot_be_made_is_named_as_given(data: Path, tmp_path: Path) -> None:
    # /proc takes no new directory, whoever runs the test (root included).
    dest = Path("/proc/parley-backup")
    result = admin("backup", dest, "--data-dir", data)
    refused(result, f"Cannot write a backup at {dest}:", "Give DEST in a directory")
    assert ".incomplete" not in result.stderr
    deeper = tmp_path / "a-file"
    deeper.write_text("")
    refused(
        admin("backup", deeper / "sub" / "b", "--data-dir", data),
        f"Cannot write a backup at {deeper / 'sub' / 'b'}:",
    )


def test_a_missing_database_is_named(tmp_path: Path) -> None:
    refused(
        admin("backup", tmp_path / "b", "--data-dir", tmp_path / "nothing"),
        str(tmp_path / "nothing" / DEFAULT_FILE),
    )
    assert not (tmp_path / "b").exists()


def test_what_is_not_a_backup_is_refused(backup: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    refused(admin("restore", tmp_path / "absent", "--data-dir", new), str(tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(admin("restore", empty, "--data-dir", new), str(empty), "not a Parley backup")
    (backup / "parley-backup.json").write_text("{not json")
    refused(admin("restore", backup, "--data-dir", new), "parley-backup.json", "damaged")
    assert not new.exists()


def test_a_damaged_database_is_refused(backup: Path, tmp_path: Path) -> None:
    database = backup / DEFAULT_FILE
    raw = bytearray(database.read_bytes())
    # The header of the second page, a table's root: its structure, which SQLite checks (the
    # middle of the file may be a row's text, which no check can tell from any other).
    page = int.from_bytes(raw[16:18], "big")
    raw[page : page + 64] = b"\xff" * 64
    database.write_bytes(bytes(raw))
    new = tmp_path / "new"
    refused(admin("restore", backup, "--data-dir", new), str(database), "SHA-256")
    # Even with a manifest that matches the damaged file, SQLite's own check catches it.
    manifest = json.loads((backup / "parley-backup.json").read_text())
    manifest["database_sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    (backup / "parley-backup.json").write_text(json.dumps(manifest))
    refused(admin("restore", backup, "--data-dir", new), str(database))
    assert not (new / DEFAULT_FILE).exists()


def test_a_shared_file_gone_or_damaged_is_left_out_not_fatal(data: Path, tmp_path: Path) -> None:
    damaged, gone = "ab" * 32, "cd" * 32
    _add_file_record(data / DEFAULT_FILE, "f1", damaged)
    _add_file_record(data / DEFAULT_FILE, "f2", gone)  # as if deleted after the snapshot
    (data / "files" / "blobs" / damaged[:2]).mkdir(parents=True)
    (data / "files" / "blobs" / damaged[:2] / damaged).write_bytes(b"")  # not its hash
    made = admin("backup", tmp_path / "b", "--data-dir", data)
    assert made.returncode == 0, made.stderr
    assert "2 shared file(s) were deleted (or damaged)" in made.stdout  # their records too
    manifest = json.loads((tmp_path / "b" / "parley-backup.json").read_text())
    assert manifest["counts"]["files"] == 0 and manifest["counts"]["blobs_left_out"] == 2
    assert admin("restore", tmp_path / "b", "--data-dir", tmp_path / "new").returncode == 0


def _add_file_record(database: Path, file_id: str, sha: str) -> None:
    db = sqlite3.connect(database)
    db.execute(
        "INSERT INTO files (file_id, sha256, name, size, sender_key, sender, conversation, "
        "recipient, created_ms, expires_ms, complete, quota_key) "
        "VALUES (?, ?, 'a.bin', 1, 'x', 'X', '#general', '#general', 1, 9e15, 1, 'x')",
        (file_id, sha),
    )
    db.commit()
    db.close()


async def test_restore_over_a_running_servers_data_is_refused_even_with_force(
    backup: Path, server_config: ServerConfig
) -> None:
    async with ParleyServer(server_config) as server:
        alice = await raw_user(server.port, "Alice")
        await alice.request("send", to="#general", text="still mine", msg_id="m1")
        await alice.close()
        for force in ((), ("--force",)):
            result = admin("restore", backup, "--data-dir", server_config.data_dir, *force)
            refused(result, str(server_config.data_dir / DEFAULT_FILE), "stop the server")
        history = await server.storage.history("#general", limit=10)
        assert [message.text for message in history] == ["still mine"]
    assert not list(server_config.data_dir.glob("replaced-*"))


def test_restore_over_a_stopped_servers_data_needs_force_and_keeps_it(
    backup: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    assert admin("create", "Dave", "--data-dir", other, stdin=PASSWORD + "\n").returncode == 0
    refused(
        admin("restore", backup, "--data-dir", other),
        str(other),
        "holds a database already",
        "--force",
    )
    assert "Dave" in admin("users", "--data-dir", other).stdout
    forced = admin("restore", backup, "--data-dir", other, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "Carol" in admin("users", "--data-dir", other).stdout
    (aside,) = other.glob("replaced-*")
    assert "Dave" in admin("users", "--database", f"sqlite:///{aside / DEFAULT_FILE}").stdout


def test_restore_needs_a_data_dir(backup: Path) -> None:
    refused(admin("restore", backup), "--data-dir")


async def test_an_older_backup_is_upgraded_when_the_server_starts(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    db = sqlite3.connect(old / DEFAULT_FILE, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for number, step in enumerate(MIGRATIONS[:1], start=1):  # before file sharing
        assert isinstance(step, str)
        db.executescript(f"BEGIN; {step}; PRAGMA user_version = {number}; COMMIT;")
    db.execute("INSERT INTO conversations VALUES ('#general', 1)")
    db.execute(
        "INSERT INTO messages VALUES ('#general', 1, 1, 'Old', 'old', '#general', 'hi', 'm1')"
    )
    db.close()
    assert admin("backup", tmp_path / "b", "--data-dir", old).returncode == 0
    restored = admin("restore", tmp_path / "b", "--data-dir", tmp_path / "new")
    assert restored.returncode == 0, restored.stderr
    config = ServerConfig(port=0, data_dir=tmp_path / "new")
    async with ParleyServer(config) as server:
        history = await server.storage.history("#general", limit=10)
        assert [message.text for message in history] == ["hi"]
    check = sqlite3.connect(tmp_path / "new" / DEFAULT_FILE)
    assert check.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    check.close()


def test_postgres_is_refused_with_the_pg_dump_line(data: Path, tmp_path: Path) -> None:
    url = "postgresql://parley:secret@127.0.0.1:5432/test"
    result = admin("backup", tmp_path / "b", "--data-dir", data, "--database", url)
    refused(result, "pg_dump --format=custom", "--files-only", "pg_restore")
    assert "secret" not in result.stderr
    assert not (tmp_path / "b").exists()
    files = admin("backup", tmp_path / "b", "--data-dir", data, "--database", url, "--files-only")
    assert files.returncode == 0, files.stderr
    manifest = json.loads((tmp_path / "b" / "parley-backup.json").read_text())
    assert manifest["schema_version"] is None
    assert (tmp_path / "b" / "key.pem").read_text() == "private key\n"
    new = tmp_path / "new"
    restored = admin("restore", tmp_path / "b", "--data-dir", new, "--database", url)
    assert restored.returncode == 0, restored.stderr
    assert "pg_restore" in restored.stdout and (new / "key.pem").read_text() == "private key\n"
    # A files-only backup holds no database, and restore does not claim to have checked one.
    assert f"{tmp_path / 'b'} checked: 0 shared file(s)." in restored.stdout
    refused(admin("backup", tmp_path / "c", "--data-dir", data, "--files-only"), "--files-only")


def test_a_large_database_is_copied_while_a_writer_never_stops(data: Path, tmp_path: Path) -> None:
    """Many copy steps, a commit between every two: the copy keeps its one snapshot and
    finishes, rather than starting over at each commit for as long as the writes go on."""
    database = data / DEFAULT_FILE
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    filler = "x" * 4000
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO messages VALUES ('#big', ?, 1, 'W', 'w', '#big', ?, ?)",
        ((seq, filler, f"m{seq}") for seq in range(1, 6001)),  # about 25 MiB: several steps
    )
    db.execute("COMMIT")
    db.close()
    stop = threading.Event()
    written = [6000]

    def write() -> None:
        own = sqlite3.connect(database, isolation_level=None, timeout=10)
        own.execute("PRAGMA synchronous = OFF")  # a commit every few microseconds
        deadline = time.monotonic() + 120  # bounded, should the backup never end
        while not stop.is_set() and time.monotonic() < deadline:
            own.execute(
                "INSERT INTO messages VALUES ('#big', ?, 1, 'W', 'w', '#big', 'more', ?)",
                (written[0] + 1, f"m{written[0] + 1}"),
            )
            written[0] += 1
        own.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while written[0] < 6100 and writer.is_alive():
            time.sleep(0.01)
        made = admin("backup", tmp_path / "b", "--data-dir", data)
        at_end = written[0]
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    manifest = json.loads((tmp_path / "b" / "parley-backup.json").read_text())
    assert 6100 <= manifest["counts"]["messages"] < at_end
    assert admin("restore", tmp_path / "b", "--data-dir", tmp_path / "new").returncode == 0
