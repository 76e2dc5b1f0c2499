"""Two real server processes sharing one PostgreSQL database (a schema of this test's own) and
one data directory, as nodes behind a load balancer do: a file token given by one node is
honoured by the other's file port, an upload started through one node is finished through the
other, and a token is good once, whichever node sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from processes import Process, environment

from parley.protocol import transfer
from postgres_support import POSTGRES_URL, postgres_schema
from support import TIMEOUT_SECONDS, RawClient, insecure_context


class Node:
    def __init__(self, process: Process, port: int, files_port: int) -> None:
        self.process, self.port, self.files_port = process, port, files_port


async def start_node(tmp_path: Path, name: str, database: str, data_dir: Path) -> Node:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'port = 0\ndata_dir = "{data_dir}"\ndatabase = "{database}"\n')
    process = await Process.start(
        "server.py", "--config", str(config), env=environment(tmp_path / name)
    )
    port = int((await process.expect(r"Server is running on 127\.0\.0\.1:(\d+)")).group(1))
    files_port = int((await process.expect(r"Files travel on port (\d+)\.")).group(1))
    return Node(process, port, files_port)


async def stop_node(node: Node) -> None:
    node.process.signal(signal.SIGTERM)
    status, _, err = await node.process.finish()
    assert status == 0, err


@pytest.fixture
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async for schema in postgres_schema():
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await admin.close()
        # Unknown URL parameters are the connection's settings: the tables go in the schema.
        database = f"{POSTGRES_URL}?search_path={schema}"
        shared = tmp_path / "shared-data"
        # One after the other: the first makes the certificate (and the admin), the second
        # finds them.
        first = await start_node(tmp_path, "a", database, shared)
        second = await start_node(tmp_path, "b", database, shared)
        try:
            yield first, second
        finally:
            await stop_node(first)
            await stop_node(second)


async def on_file_port(port: int, token: str, data: bytes = b"") -> bytes:
    """Use ``token`` on the file port ``port`` (sending ``data``); all that came back."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=insecure_context()), TIMEOUT_SECONDS
    )
    writer.write(transfer.encode(transfer.Start(token=token)))
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
    except ssl.SSLError:
        return b""
    finally:
        writer.close()


def first_line(answer: bytes) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(answer.split(b"\n", 1)[0])
    return line


def last_line(answer: bytes) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(answer.rstrip(b"\n").rsplit(b"\n", 1)[-1])
    return line


async def test_a_token_from_one_node_works_on_the_other(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    alice = await RawClient.open(a.port)
    await alice.login("Alice")
    await alice.request("join", room="#general")
    # Bob, an account, is in the room (on node A) when the file is shared...
    bob_on_a = await RawClient.open(a.port)
    await bob_on_a.login("Bob")
    assert (await bob_on_a.request("register", password="correct horse battery"))["type"] == "ok"
    await bob_on_a.request("join", room="#general")
    # ...and asks for it on node B.
    bob = await RawClient.open(b.port)
    await bob.login("Bob", password="correct horse battery")
    data = b"made on node A, finished on node B\n" * 100
    slot = await alice.request(
        "share", to="#general", name="notes.txt", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    assert slot["type"] == "upload", slot
    assert slot["port"] == a.files_port
    # The upload token from node A, redeemed on node B's file port.
    done = last_line(await on_file_port(b.files_port, slot["token"], data))
    assert done["type"] == "done", done
    # Node B gives Bob a token; the bytes come from node A's file port.
    ticket = await bob.request("get", file_id=slot["file_id"])
    assert ticket["type"] == "download", ticket
    assert ticket["port"] == b.files_port
    answer = await on_file_port(a.files_port, ticket["token"])
    header, _, body = answer.partition(b"\n")
    assert json.loads(header)["type"] == "ready"
    assert body == data
    # Used once, on A: B does not take it again.
    again = first_line(await on_file_port(b.files_port, ticket["token"]))
    assert (again["type"], again["code"]) == ("error", "no-such-file")
    for client in (alice, bob, bob_on_a):
        await client.close()


async def test_the_token_cap_holds_across_nodes(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    alice = await RawClient.open(a.port)
    await alice.login("Alice")
    await alice.request("join", room="#general")
    data = b"x"
    slot = await alice.request(
        "share", to="#general", name="x.txt", size=1, sha256=hashlib.sha256(data).hexdigest()
    )
    assert last_line(await on_file_port(a.files_port, slot["token"], data))["type"] == "done"
    # The same account on both nodes: its tokens count together (max_tokens_per_principal 20).
    assert (await alice.request("register", password="correct horse battery"))["type"] == "ok"
    on_b = await RawClient.open(b.port)
    await on_b.login("Alice", password="correct horse battery")
    replies = []
    for number in range(22):
        client = alice if number % 2 else on_b
        replies.append(await client.request("get", file_id=slot["file_id"]))
    assert [reply["type"] for reply in replies[:20]] == ["download"] * 20
    assert [reply.get("code") for reply in replies[20:]] == ["too-many-tokens"] * 2
    await alice.close()
    await on_b.close()


async def test_an_upload_under_way_on_one_node_holds_the_file_on_the_other(
    two_nodes: tuple[Node, Node],
) -> None:
    a, b = two_nodes
    alice = await RawClient.open(a.port)
    await alice.login("Alice")
    await alice.request("join", room="#general")
    data = b"0123456789" * 1000
    share = {
        "to": "#general",
        "name": "big.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    slot = await alice.request("share", **share)
    # The first half goes to node A's file port, and the connection stays open...
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", a.files_port, ssl=insecure_context()
    )
    writer.write(transfer.encode(transfer.Start(token=slot["token"])))
    assert json.loads(await asyncio.wait_for(reader.readline(), TIMEOUT_SECONDS))["offset"] == 0
    writer.write(data[:5000])
    await writer.drain()
    # ...so a second token for the same upload (an interrupted one resumes) is refused on B.
    again = await alice.request("share", **share)
    assert again["file_id"] == slot["file_id"]
    refused = first_line(await on_file_port(b.files_port, again["token"]))
    assert (refused["type"], refused["code"]) == ("error", "too-many-uploads")
    # Once A's connection ends, the upload resumes on B from where it stopped.
    writer.close()
    for _ in range(15):  # the claim is given back as A notices the connection's end
        resumed = await alice.request("share", **share)
        answer = await on_file_port(b.files_port, resumed["token"], data[resumed["offset"] :])
        if last_line(answer).get("code") != "too-many-uploads":
            break
        await asyncio.sleep(0.2)
    assert resumed["offset"] == 5000
    assert last_line(answer)["type"] == "done"
    await alice.close()
