"""Sharing files through the real client processes over pipes, against the real server over
TLS: privately and in a room, with the hash checked, hostile commands refused, and an upload
killed halfway that resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from processes import Lab


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


async def test_two_users_share_files_privately_and_in_a_room(lab: Lab, tmp_path: Path) -> None:
    await lab.start_server()
    alice = await lab.guest("Alice")
    bob = await lab.guest("Bob")
    report = _file(tmp_path / "outbox" / "report.pdf", 2_400_000)

    alice.type(f"/send Bob {report}")
    await alice.expect(r"^Shared report\.pdf with Bob \(([0-9a-f]{8})\)\.$")
    line = await bob.expect(
        r"^\(private\) Alice shared report\.pdf \(2\.3 MiB\) — /get ([0-9a-f]{8})$"
    )
    short_id = line.group(1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bob.type(f"/get {short_id} {inbox}")
    await bob.expect(rf"^Saved {inbox}/report\.pdf \(SHA-256 checked\)\.$")
    assert (inbox / "report.pdf").read_bytes() == report.read_bytes()

    notes = _file(tmp_path / "outbox" / "notes.txt", 1234)
    bob.type(f"/upload #general {notes}")
    line = await alice.expect(r"^Bob shared notes\.txt \(1\.2 KiB\) — /get ([0-9a-f]{8})$")
    alice.type("/files")
    await alice.expect(r"^Files \(2\):$")
    await alice.expect(rf"^  {line.group(1)}  notes\.txt \(1\.2 KiB\) from Bob to #general, ")
    alice.type(f"/get {line.group(1)} {tmp_path / 'alice-got.txt'}")
    await alice.expect(r"^Saved .*alice-got\.txt \(SHA-256 checked\)\.$")
    assert (tmp_path / "alice-got.txt").read_bytes() == notes.read_bytes()

    # A late joiner of the room was not a member when it was shared: not theirs to fetch.
    carol = await lab.guest("Carol")
    carol.type("/files")
    await carol.expect(r"^No files\.$")
    carol.type(f"/get {short_id}")
    await carol.expect(rf"^\*\*\* No file starts with {short_id}; /files lists them\.$")

    # Hostile or mistaken commands get a clear answer and change nothing.
    carol.type("/get ../../etc/passwd")
    await carol.expect(r"^\*\*\* \.\./\.\./etc/passwd is not a file id: /files lists them ")
    carol.type("/get")
    await carol.expect(r"^Usage: /get ID \[DEST\]$")
    carol.type(f"/send Bob {tmp_path / 'no-such-file'}")
    await carol.expect(r"^\*\*\* There is no file .*no-such-file\.$")
    carol.type(f"/send Bob {tmp_path}")
    await carol.expect(r"^\*\*\* .* is a folder: /send shares one file at a time\.$")
    carol.type("/rmfile " + short_id)
    await carol.expect(r"^\*\*\* No file starts with")
    alice.type(f"/rmfile {short_id}")
    await alice.expect(rf"^Deleted the file {short_id}\.$")
    bob.type(f"/get {short_id}")
    await bob.expect(r"^\*\*\* No file starts with")


async def test_an_upload_killed_halfway_resumes_where_it_stopped(lab: Lab, tmp_path: Path) -> None:
    await lab.start_server()
    bob = await lab.guest("Bob")
    # An unfinished upload belongs to whoever started it: an account resumes it from another
    # run of its client (a guest's ends with its login; a new login is someone new).
    alice = await lab.guest("Alice")
    alice.type("/register")
    for _ in range(2):
        await alice.expect(r"Password( again)?: $")
        alice.type("correct horse battery")
    await alice.expect(r"Registered Alice\.")
    big = _file(tmp_path / "big.bin", 90 * 1024 * 1024)  # under the 100 MiB default limit
    partial = lab.root / "server" / "data" / "parley" / "files" / "partial"

    alice.type(f"/send Bob {big}")
    await alice.expect(r"^↑ big\.bin 0% ")
    for _ in range(2000):  # kill it as soon as the server holds some of it
        held = [path.stat().st_size for path in partial.iterdir()] if partial.exists() else []
        if held and held[0] > 1024 * 1024:
            break
        await asyncio.sleep(0.005)
    alice.kill()
    await alice.finish()
    held = [path.stat().st_size for path in partial.iterdir()]
    assert len(held) == 1 and 0 < held[0] < big.stat().st_size

    alice = await lab.guest("Alice")
    alice.type(f"/send Bob {big}")
    resumed = await alice.expect(r"^↑ big\.bin (\d+)% ")
    assert int(resumed.group(1)) > 0  # it did not start again from the beginning
    await alice.expect(r"^Shared big\.bin with Bob")
    line = await bob.expect(r"^\(private\) Alice shared big\.bin \(90 MiB\) — /get ([0-9a-f]{8})$")
    bob.type(f"/get {line.group(1)} {tmp_path / 'got.bin'}")
    await bob.expect(r"^Saved .*got\.bin \(SHA-256 checked\)\.$")
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert hashlib.sha256((tmp_path / "got.bin").read_bytes()).hexdigest() == digest
    assert list(partial.iterdir()) == []
