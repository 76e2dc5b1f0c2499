"""A backup taken while the real server takes messages from several clients, restored into a
new data dir: a server started there has every message acknowledged before the backup began,
the shared files byte for byte, the same certificate, and no upload that was still under way."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import stat
import time
from pathlib import Path

from processes import Process, environment, start_server

from parley.client.core import ChatClient
from parley.client.transfer import download, upload
from parley.storage.factory import DEFAULT_FILE
from parley.storage.sqlite import MIGRATIONS, SqliteStorage
from support import RawClient

PASSWORD = "correct horse battery"
WRITERS = 3
# Each writer stops after this many messages or seconds, whichever comes first.
MAX_MESSAGES_PER_WRITER = 5000
MAX_WRITING_SECONDS = 60.0


async def parley_admin(home: Path, *args: str) -> tuple[int, str, str]:
    """``python -m parley admin ARGS`` as a process of its own; its status, stdout, stderr."""
    process = await Process.start("-m", "parley", "admin", *args, env=environment(home))
    return await asyncio.wait_for(process.finish(), 120)


class Writer:
    """A client sending to #general one message after another (a few in flight), noting
    when each was acknowledged."""

    def __init__(self, port: int, nick: str) -> None:
        self.port = port
        self.nick = nick
        self.acked: dict[str, tuple[int, float]] = {}  # msg_id: (seq, when acknowledged)
        self.stop = asyncio.Event()

    async def run(self) -> None:
        client = await RawClient.open(self.port)
        await client.login(self.nick)
        started = time.monotonic()
        sent = 0
        window = 8
        try:
            while not self.stop.is_set() and sent < MAX_MESSAGES_PER_WRITER:
                if time.monotonic() - started > MAX_WRITING_SECONDS:
                    break
                for _ in range(window):
                    client.send(
                        type="send", id=sent + 1000, to="#general", text=f"{self.nick} {sent}",
                        msg_id=f"{self.nick}-{sent}",
                    )  # fmt: skip
                    sent += 1
                replies = 0
                while replies < window:
                    frame = await client.frame()
                    if frame["type"] == "sent":
                        now = time.monotonic()
                        self.acked[f"{self.nick}-{frame['id'] - 1000}"] = (frame["seq"], now)
                        replies += 1
                    elif "id" in frame and frame["type"] == "error":
                        raise AssertionError(frame)
        finally:
            await client.close()


def _file(path: Path, size: int, seed: int) -> Path:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    path.write_bytes((block * (size // len(block) + 1))[:size])
    return path


async def test_a_backup_taken_under_load_restores_everything_acknowledged_before_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        "flood_burst_requests = 100000\nflood_rate_per_second = 100000.0\n"
        "flood_debt_requests = 100000\n"
        "request_burst_per_principal = 100000\nrequest_rate_per_principal = 100000.0\n"
        "request_burst_guests_per_address = 100000\n"
        "request_rate_guests_per_address = 100000.0\n"
    )
    data = tmp_path / "server-data"
    server, port = await start_server(tmp_path, "--data-dir", str(data), "--config", str(config))
    fingerprint = await server.expect(r"Certificate SHA-256 fingerprint: (\S+)")
    backup_dir = tmp_path / "backups" / "monday"
    try:
        sharer = await ChatClient.connect("127.0.0.1", port, pins=None)
        await sharer.login("Sharer")
        await sharer.register(PASSWORD)  # an account: its files are still its own after restore
        shared = {}
        for seed, size in ((1, 300_000), (2, 5_000), (3, 0)):
            source = _file(tmp_path / f"shared-{seed}.bin", size, seed)
            shared[await upload(sharer, source, "#general")] = hashlib.sha256(
                source.read_bytes()
            ).hexdigest()
        # An upload offered but never sent: still under way when the backup is taken.
        pending = await RawClient.open(port)
        await pending.login("Pending")
        slot = await pending.request(
            "share", to="#general", name="unfinished.bin", size=1000, sha256="ab" * 32
        )
        assert slot["type"] == "upload", slot
        await sharer.close()

        writers = [Writer(port, f"Writer{n}") for n in range(WRITERS)]
        tasks = [asyncio.create_task(writer.run()) for writer in writers]
        while sum(len(writer.acked) for writer in writers) < 300:
            assert not any(task.done() for task in tasks), [t.exception() for t in tasks]
            await asyncio.sleep(0.05)
        backup_started = time.monotonic()
        status, out, err = await parley_admin(
            tmp_path, "backup", str(backup_dir), "--data-dir", str(data)
        )
        backup_ended = time.monotonic()
        await asyncio.sleep(0.2)  # the writers carry on after the backup too
        for writer in writers:
            writer.stop.set()
        await asyncio.gather(*tasks)
        await pending.close()
    finally:
        server.signal(signal.SIGTERM)
        await server.finish()
    assert status == 0, err
    assert "keep it private" in out
    # Nothing was deleted meanwhile: the unfinished upload is left out as such, not as missing.
    assert "left out" not in out
    before = {
        msg_id: seq
        for writer in writers
        for msg_id, (seq, when) in writer.acked.items()
        if when < backup_started
    }
    after = [1 for writer in writers for _, when in writer.acked.values() if when > backup_ended]
    assert len(before) >= 300 and after, "the writers were not writing around the backup"

    manifest = json.loads((backup_dir / "parley-backup.json").read_text())
    assert manifest["schema_version"] == len(MIGRATIONS)
    assert manifest["counts"]["blobs"] == 3 and manifest["counts"]["files"] == 3
    assert manifest["counts"]["messages"] >= len(before)
    # The backup holds the private key: private, like the data dir.
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    for name in ("key.pem", "cert.pem", DEFAULT_FILE, "parley-backup.json"):
        assert stat.S_IMODE((backup_dir / name).stat().st_mode) == 0o600, name
    assert not list(backup_dir.parent.glob(".*incomplete*"))

    restored = tmp_path / "restored-data"
    status, out, err = await parley_admin(
        tmp_path, "restore", str(backup_dir), "--data-dir", str(restored)
    )
    assert status == 0, err
    storage = await SqliteStorage.open(restored / DEFAULT_FILE)
    try:
        assert await storage.file(slot["file_id"]) is None  # the unfinished upload is not in it
    finally:
        await storage.close()

    # The same limits: reading back thousands of messages is more than a user's request budget.
    server, port = await start_server(
        tmp_path, "--data-dir", str(restored), "--config", str(config)
    )
    try:
        assert (await server.expect(r"Certificate SHA-256 fingerprint: (\S+)")).group(1) == (
            fingerprint.group(1)
        )
        reader = await RawClient.open(port)
        await reader.login("Reader")
        stored: dict[str, int] = {}
        after_seq = 0
        while True:
            page = await reader.request("history", to="#general", after=after_seq, limit=200)
            assert page["type"] == "history", page
            for message in page["messages"]:
                stored[message["msg_id"]] = message["seq"]
                after_seq = message["seq"]
            if not page.get("more"):
                break
        await reader.close()
        missing = [msg_id for msg_id, seq in before.items() if stored.get(msg_id) != seq]
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"

        fetcher = await ChatClient.connect("127.0.0.1", port, pins=None)
        await fetcher.login("Sharer", password=PASSWORD)
        folder = tmp_path / "downloads"
        folder.mkdir()
        for file_id, sha in shared.items():
            saved = await download(fetcher, file_id, folder)
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == sha
        await fetcher.close()
    finally:
        server.signal(signal.SIGTERM)
        status, _, err = await server.finish()
    assert status == 0, err
