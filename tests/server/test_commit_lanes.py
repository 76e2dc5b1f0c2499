"""The commit pipeline on its own, against a real database whose commits the test holds back:
each conversation's messages are stored and published in the order they were sent, busy
conversations do not hold up the others, a join holding a lane holds its commits, a commit in
doubt is published by the retry that finds it stored, and a storage bug spoils one batch only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from hub_parts import GatedStorage, RecordingBus, RecordingPeer
from parley.server.commits import Commits, Pending
from parley.server.health import StorageHealth
from parley.server.metrics import ServerMetrics
from parley.server.read_markers import ReadMarkers
from parley.server.tasks import TaskSet
from parley.storage import CommitUncertain, NewMessage, Storage
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema


class Pipeline:
    def __init__(self, storage: GatedStorage) -> None:
        self.storage = storage
        self.bus = RecordingBus()
        self.tasks = TaskSet("test-commits")
        self.health = StorageHealth()
        real = cast(Storage, storage)
        markers = ReadMarkers(real, self.tasks, self.health, lambda principal: None)
        self.metrics = ServerMetrics()
        self.commits = Commits(real, self.bus, self.tasks, self.health, markers, self.metrics)
        self.alice = RecordingPeer("Alice")
        # Request id -> the text sent under it.
        self.requests: dict[int, str] = {}

    def send(self, conversation: str, text: str, msg_id: str | None = None) -> None:
        message = NewMessage(conversation, "Alice", "alice", conversation, text, msg_id or text)
        request_id = len(self.requests) + 1
        self.requests[request_id] = text
        self.commits.submit(Pending(message, self.alice, request_id))

    def replies(self) -> list[dict[str, Any]]:
        return [e for e in self.alice.events() if e["type"] in ("sent", "error")]


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for ``condition``, giving the pipeline's tasks the loop meanwhile."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


async def _idle(iterations: int = 50) -> None:
    """Let every ready task run for a while: what can happen without the test, has."""
    for _ in range(iterations):
        await asyncio.sleep(0)


@pytest.fixture
async def lanes() -> AsyncIterator[Pipeline]:
    """A pipeline on PostgreSQL: one lane per conversation, committing side by side."""
    async for schema in postgres_schema():
        inner = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        pipeline = Pipeline(GatedStorage(inner, serial_writes=False))
        yield pipeline
        await pipeline.tasks.wait(5)
        await inner.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pipeline]:
    if request.param == "sqlite":
        inner: Storage = await SqliteStorage.open(tmp_path / "parley.sqlite3")
        made = Pipeline(GatedStorage(inner, serial_writes=True))
        yield made
        await made.tasks.wait(5)
        await inner.close()
    else:
        async for schema in postgres_schema():
            inner = await PostgresStorage.open(POSTGRES_URL, schema=schema)
            made = Pipeline(GatedStorage(inner, serial_writes=False))
            yield made
            await made.tasks.wait(5)
            await inner.close()


async def test_each_conversation_keeps_its_order_and_a_held_one_does_not_hold_the_others(
    lanes: Pipeline,
) -> None:
    gate = lanes.storage.gate("#a")
    lanes.send("#a", "a1")
    await _idle()
    for text in ("a2", "a3"):
        lanes.send("#a", text)
    lanes.send("#b", "b1")
    await _until(lambda: lanes.bus.texts("#b") == ["b1"], "#b waited for #a's commit")
    assert lanes.bus.texts("#a") == []
    gate.set()
    await _until(lambda: len(lanes.bus.texts("#a")) == 3, "#a's messages were not published")
    published = [event for c, event in lanes.bus.published if c == "#a"]
    assert [(e["text"], e["seq"]) for e in published] == [("a1", 1), ("a2", 2), ("a3", 3)]
    # Group commit: what queued behind the held batch went in one batch of its own.
    assert [b for b in lanes.storage.batches if b[0].startswith("a")] == [["a1"], ["a2", "a3"]]
    acks = [(lanes.requests[r["id"]], r["type"], r["seq"]) for r in lanes.replies()]
    assert acks == [("b1", "sent", 1), ("a1", "sent", 1), ("a2", "sent", 2), ("a3", "sent", 3)]
    assert lanes.commits.conversations_waiting == 0


async def test_serial_storage_stores_every_waiting_conversation_in_one_commit(
    tmp_path: Path,
) -> None:
    inner = await SqliteStorage.open(tmp_path / "parley.sqlite3")
    together = Pipeline(GatedStorage(inner, serial_writes=True))
    try:
        gate = together.storage.gate("#a")
        together.send("#a", "a1")
        await _idle()
        together.send("#a", "a2")
        together.send("#b", "b1")
        together.send("#c", "c1")
        await _idle()
        assert together.bus.published == []
        gate.set()
        await _until(lambda: len(together.bus.published) == 4, "not everything was published")
        assert together.storage.batches == [["a1"], ["a2", "b1", "c1"]]
        assert together.bus.texts("#a") == ["a1", "a2"]
    finally:
        await together.tasks.wait(5)
        await inner.close()


async def test_a_join_holding_the_lane_holds_its_commits_until_it_is_done(
    pipeline: Pipeline,
) -> None:
    async with pipeline.commits.in_order("#a"):
        pipeline.send("#a", "a1")
        await _idle()
        assert pipeline.bus.published == [], "a message was published while its lane was held"
    await _until(lambda: pipeline.bus.texts("#a") == ["a1"], "#a was not stored after the join")
    assert pipeline.commits.conversations_waiting == 0


async def test_a_join_holding_one_lane_does_not_hold_the_others(lanes: Pipeline) -> None:
    async with lanes.commits.in_order("#a"):
        lanes.send("#a", "a1")
        lanes.send("#b", "b1")
        await _until(lambda: lanes.bus.texts("#b") == ["b1"], "#b waited for #a's lane")
        assert lanes.bus.texts("#a") == []
    await _until(lambda: lanes.bus.texts("#a") == ["a1"], "#a was not stored after the join")


async def test_a_commit_in_doubt_is_published_once_by_the_retry_that_finds_it(
    pipeline: Pipeline,
) -> None:
    pipeline.storage.fail.append((CommitUncertain("injected: connection lost at COMMIT"), True))
    pipeline.send("#a", "hello", msg_id="m1")
    await _until(lambda: len(pipeline.replies()) == 1, "no answer to the first try")
    assert pipeline.replies()[0]["code"] == "unavailable"
    assert pipeline.bus.published == []
    assert pipeline.health.degraded
    for answers in (2, 3):
        pipeline.send("#a", "hello", msg_id="m1")
        await _until(lambda: len(pipeline.replies()) == answers, "no answer to a retry")  # noqa: B023
        assert pipeline.replies()[-1]["type"] == "sent"
        assert pipeline.replies()[-1]["duplicate"] is True
    # Stored by the first try, shown by the second, and not again by the third.
    assert pipeline.bus.texts("#a") == ["hello"]
    assert not pipeline.health.degraded


async def test_a_storage_bug_answers_its_batch_and_the_lane_goes_on(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline.storage.fail.append((RuntimeError("injected: a bug in storage"), False))
    with caplog.at_level(logging.ERROR):
        pipeline.send("#a", "lost")
        await _until(lambda: len(pipeline.replies()) == 1, "no answer to the failed batch")
        pipeline.send("#a", "kept")
        await _until(lambda: len(pipeline.replies()) == 2, "the lane stopped after a bug")
    assert [reply["type"] for reply in pipeline.replies()] == ["error", "sent"]
    assert pipeline.replies()[0]["code"] == "internal-error"
    assert pipeline.bus.texts("#a") == ["kept"]
    assert [r.getMessage() for r in caplog.records] == ["Bug: storing 1 messages failed"]
