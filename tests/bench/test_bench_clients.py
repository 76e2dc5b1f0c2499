"""The load clients' receive path, fed bytes by hand: what counts as a delivery, readiness,
keep-alives. No server and no network.
"""

from __future__ import annotations

import asyncio
import re
import time

from bench.client import TEXT_BYTES, BenchClient, message_text
from bench.irc import IrcClient
from bench.parley_driver import ParleyClient


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def abort(self) -> None:
        pass


def connected(client: BenchClient) -> RecordingTransport:
    transport = RecordingTransport()
    client.connection_made(transport)
    return transport


def parley_message(speaker: int) -> bytes:
    text = message_text(speaker).decode()
    return (
        b'{"type":"message","to":"#general","sender":"u%05d","text":"%s","seq":1,"ts":1,'
        b'"msg_id":"3"}\n' % (speaker, text.encode())
    )


async def test_a_message_text_is_64_bytes_with_speaker_and_send_time() -> None:
    before = time.monotonic_ns()
    text = message_text(42)
    after = time.monotonic_ns()

    assert len(text) == TEXT_BYTES
    found = re.fullmatch(rb"%%(\d{5}) (\d{19}) x+", text)
    assert found is not None
    assert int(found[1]) == 42
    assert before <= int(found[2]) <= after


async def test_parley_client_logs_in_then_counts_only_messages_from_others() -> None:
    client = ParleyClient(7, room=True, sampled=True)
    transport = connected(client)
    assert b'"type":"hello"' in transport.written
    assert b'"nick":"u00007"' in transport.written

    client.data_received(b'{"type":"welcome","id":1,"version":1}\n{"type":"joined","room"')
    assert not client.ready.done()
    client.data_received(b':"#general","nick":"u00007"}\n{"type":"ok","id":2,"nick":"u00007"}\n')
    assert client.ready.done()

    client.say()
    assert b'"type":"send"' in transport.written
    own, other = parley_message(7), parley_message(3)
    # A frame split across reads counts once, when its line is complete.
    client.data_received(own + other[:50])
    client.data_received(other[50:] + b'{"type":"sent","id":3,"seq":1,"ts":1}\n')

    assert client.received == 1
    assert len(client.latencies_ns) == 1
    assert client.latencies_ns[0] >= 0


async def test_parley_client_counts_rate_limited_refusals() -> None:
    client = ParleyClient(1, room=True, sampled=False)
    connected(client)
    client.data_received(b'{"type":"ok","id":2,"nick":"u00001"}\n')
    client.data_received(
        b'{"type":"error","code":"rate-limited","message":"slow down","id":9}\n' * 2
    )
    assert client.refusals == 2


async def test_parley_client_fails_on_a_refused_login() -> None:
    client = ParleyClient(1, room=True, sampled=False)
    connected(client)
    client.data_received(
        b'{"type":"welcome","id":1}\n{"type":"error","code":"nick-taken","id":2}\n'
    )
    assert isinstance(client.ready.exception(), ConnectionError)


async def test_irc_client_registers_joins_and_answers_pings() -> None:
    client = IrcClient(5, room=True, sampled=True)
    transport = connected(client)
    assert transport.written == b"NICK u00005\r\nUSER u00005 0 * :bench\r\n"

    # User statistics hold numbers such as 433 that are not replies.
    client.data_received(
        b":srv 001 u00005 :Welcome\r\n:srv 251 u00005 :There are 433 users and 0 services\r\n"
    )
    assert transport.written.endswith(b"JOIN #bench\r\n")
    assert not client.ready.done()
    client.data_received(b":srv 353 u00005 = #bench :u00005\r\n:srv 366 u00005 #bench :End\r\n")
    assert client.ready.done() and client.ready.exception() is None

    line = b":u00002!~u00002@127.0.0.2 PRIVMSG #bench :" + message_text(2) + b"\r\n"
    client.data_received(line * 3 + b"PING :srv\r\n")
    assert client.received == 3
    assert len(client.latencies_ns) == 3
    assert transport.written.endswith(b"PONG :srv\r\n")


async def test_irc_client_fails_when_its_nickname_is_taken() -> None:
    client = IrcClient(5, room=False, sampled=False)
    connected(client)
    client.data_received(b":srv 433 * u00005 :Nickname already in use\r\n")
    assert isinstance(client.ready.exception(), ConnectionError)


async def test_a_connection_the_server_closes_counts_as_dropped_ours_does_not() -> None:
    theirs, ours = IrcClient(1, room=False, sampled=False), IrcClient(2, room=False, sampled=False)
    for client in (theirs, ours):
        connected(client)
        client.data_received(b":srv 001 u0000%d :Welcome\r\n" % client.index)
    ours.close()
    theirs.connection_lost(None)
    ours.connection_lost(None)
    assert theirs.dropped and not ours.dropped
