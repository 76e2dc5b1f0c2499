"""The commit pipeline on its own, against a real database whose commits the test holds back:
each conversation's messages are stored and published in the order they were sent, busy
conversations do not hold up the others, a join holding a lane holds its commits, a commit in
doubt is published by the retry that finds it stored, and a storage bug spoils one batch only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from hub_parts import GatedStorage, RecordingBus, RecordingPeer
from parley.server.commits import Commits, Pending
from parley.server.health import StorageHealth
from parley.server.metrics import ServerMetrics
from parley.server.read_markers import ReadMarkers
from parley.server.tasks import TaskSet
from parley.storage import CommitUncertain, NewMessage, Storage
from parley.storage.postgres import PostgresStorage, Timeouts
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
        pipeline = Pipeline(GatedStorage(inner))
        yield pipeline
        await pipeline.tasks.wait(5)
        await inner.close()


@pytest.fixture
async def locking() -> AsyncIterator[tuple[Pipeline, str]]:
    """A pipeline on PostgreSQL with a short lock timeout, and its schema (for the session
    that locks a row)."""
    async for schema in postgres_schema():
        inner = await PostgresStorage.open(
            POSTGRES_URL, schema=schema, timeouts=Timeouts(lock_seconds=1.0)
        )
        pipeline = Pipeline(GatedStorage(inner))
        yield pipeline, schema
        await pipeline.tasks.wait(5)
        await inner.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pipeline]:
    if request.param == "sqlite":
        inner: Storage = await SqliteStorage.open(tmp_path / "parley.sqlite3")
        made = Pipeline(GatedStorage(inner))
        yield made
        await made.tasks.wait(5)
        await inner.close()
    else:
        async for schema in postgres_schema():
            inner = await PostgresStorage.open(POSTGRES_URL, schema=schema)
            made = Pipeline(GatedStorage(inner))
            yield made
            await made.tasks.wait(5)
            await inner.close()


@contextlib.asynccontextmanager
async def _row_held(schema: str, conversation: str) -> AsyncIterator[None]:
    """Another session (another node, an operator's psql) holds ``conversation``'s row."""
    locker = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
    try:
        held = locker.transaction()
        await held.start()
        await locker.execute("SELECT * FROM conversations WHERE id = $1 FOR UPDATE", conversation)
        yield
        await held.rollback()
    finally:
        await locker.close()


def _seqs(pipeline: Pipeline, conversation: str) -> list[tuple[str, int]]:
    return [(e["text"], e["seq"]) for c, e in pipeline.bus.published if c == conversation]


async def _first_messages(pipeline: Pipeline, *conversations: str) -> None:
    """One message in each conversation, so that each has its row."""
    for conversation in conversations:
        pipeline.send(conversation, f"{conversation[1:]}0")
    await _until(
        lambda: all(_seqs(pipeline, c) for c in conversations), "the first messages were lost"
    )


async def test_free_conversations_commit_together_while_a_locked_one_waits_alone(
    locking: tuple[Pipeline, str],
) -> None:
    lanes, schema = locking
    await _first_messages(lanes, "#a", "#b", "#c")
    lanes.storage.calls.clear()
    async with _row_held(schema, "#a"):
        for text in ("a1", "b1", "a2", "c1", "b2"):
            lanes.send(f"#{text[0]}", text)
        await _until(lambda: len(_seqs(lanes, "#c")) == 2, "#c waited for #a's row")
        assert _seqs(lanes, "#b") == [("b0", 1), ("b1", 2), ("b2", 3)]
        assert _seqs(lanes, "#c") == [("c0", 1), ("c1", 2)]
        # One transaction for all; #a was left out of it, and waits in one of its own.
        assert lanes.storage.calls[0] == ("append_free", ["a1", "a2", "b1", "b2", "c1"])
        assert lanes.storage.calls[1] == ("append", ["a1", "a2"])
        # #a's messages queued meanwhile wait behind the held ones, in order.
        lanes.send("#a", "a3")
        lanes.send("#b", "b3")
        await _until(lambda: len(_seqs(lanes, "#b")) == 4, "#b waited for #a's row")
        await _idle()
        assert _seqs(lanes, "#a") == [("a0", 1)]
    await _until(lambda: len(_seqs(lanes, "#a")) == 4, "#a was not stored after the release")
    assert _seqs(lanes, "#a") == [("a0", 1), ("a1", 2), ("a2", 3), ("a3", 4)]
    replies = {lanes.requests[r["id"]]: r for r in lanes.replies()}
    assert all(reply["type"] == "sent" for reply in replies.values())
    assert [replies[t]["seq"] for t in ("a1", "a2", "a3")] == [2, 3, 4]
    assert lanes.commits.conversations_waiting == 0


async def test_a_conversation_locked_past_the_lock_timeout_is_refused_alone(
    locking: tuple[Pipeline, str],
) -> None:
    lanes, schema = locking
    await _first_messages(lanes, "#a", "#b")
    async with _row_held(schema, "#a"):
        lanes.send("#a", "a1")
        lanes.send("#b", "b1")
        await _until(lambda: len(lanes.replies()) == 4, "#a's sender was not answered")
        answers = {lanes.requests[r["id"]]: r for r in lanes.replies()}
        assert answers["a1"]["code"] == "unavailable"
        assert (answers["b1"]["type"], answers["b1"]["seq"]) == ("sent", 2)
    # The row is free again: the retry is numbered right after, no gap.
    lanes.send("#a", "a1")
    lanes.send("#b", "b2")
    await _until(lambda: len(lanes.replies()) == 6, "the retry was not answered")
    assert _seqs(lanes, "#a") == [("a0", 1), ("a1", 2)]
    assert _seqs(lanes, "#b") == [("b0", 1), ("b1", 2), ("b2", 3)]
    assert lanes.storage.calls[-1] == ("append_free", ["a1", "b2"])


async def test_serial_storage_stores_every_waiting_conversation_in_one_commit(
    tmp_path: Path,
) -> None:
    inner = await SqliteStorage.open(tmp_path / "parley.sqlite3")
    together = Pipeline(GatedStorage(inner))
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
