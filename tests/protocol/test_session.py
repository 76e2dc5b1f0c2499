"""The pure connection state machines: ServerSession and ClientSession."""

import pytest

from parley.protocol import limits
from parley.protocol.errors import (
    ErrorCode,
    FrameTooLarge,
    InvalidMessage,
    MalformedFrame,
    PeerError,
)
from parley.protocol.messages import (
    Bye,
    Hello,
    Joined,
    ListUsers,
    Nick,
    Ok,
    Ping,
    Pong,
    Request,
    Send,
    Welcome,
    encode,
)
from parley.protocol.session import (
    MAX_PROTOCOL_ERRORS,
    ClientSession,
    ServerSession,
    State,
    choose_version,
)

HELLO = Hello(id=1, versions=[1])
NICK = Nick(id=2, nick="alice")
SEND = Send(id=3, to="#general", text="hi", msg_id="m1")
LIST = ListUsers(id=4)
PING = Ping(id=5)
BYE = Bye(id=6)
ALL_REQUESTS: list[Request] = [HELLO, NICK, SEND, LIST, PING, BYE]

EXPECTED_ACCEPTS = {
    State.HELLO: {Hello},
    State.LOGIN: {Nick, Ping, Bye},
    State.ACTIVE: {Send, ListUsers, Ping, Bye},
    State.CLOSED: set(),
}


def _session_in(state: State) -> ServerSession:
    session = ServerSession()
    session.state = state
    return session


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=lambda r: type(r).__name__)
def test_check_follows_the_state_table(state: State, request_: Request) -> None:
    session = _session_in(state)
    if type(request_) in EXPECTED_ACCEPTS[state]:
        session.check(request_)
    else:
        with pytest.raises(PeerError) as info:
            session.check(request_)
        assert info.value.code is ErrorCode.NOT_ALLOWED_NOW
        assert info.value.request_id == request_.id
        assert not info.value.closes_connection
    assert session.state is state


def test_new_session_waits_for_hello() -> None:
    session = ServerSession()
    assert session.state is State.HELLO
    session.check(HELLO)
    for request in (NICK, SEND, LIST, PING, BYE):
        with pytest.raises(PeerError, match="not allowed"):
            session.check(request)


def test_full_login_then_bye() -> None:
    session = ServerSession()
    session.granted(HELLO)
    assert session.state is State.LOGIN
    session.granted(PING)
    assert session.state is State.LOGIN
    session.granted(NICK)
    assert session.state is State.ACTIVE
    for request in (SEND, LIST, PING):
        session.granted(request)
        assert session.state is State.ACTIVE
    session.granted(BYE)
    assert session.state is State.CLOSED


def test_bye_during_login_closes() -> None:
    session = _session_in(State.LOGIN)
    session.granted(BYE)
    assert session.state is State.CLOSED


def test_close() -> None:
    session = ServerSession()
    session.close()
    assert session.state is State.CLOSED
    assert session.receive_data(encode(HELLO)) == []


def test_receive_data_returns_requests_and_errors_in_order() -> None:
    session = ServerSession()
    data = (
        encode(HELLO)
        + b'{"type":"frobnicate","id":10}\n'
        + encode(NICK)
        + b'{"type":"ping","id":"x"}\n'
        + encode(PING)
    )
    items = session.receive_data(data)
    assert len(items) == 5
    assert items[0] == HELLO
    assert isinstance(items[1], InvalidMessage)
    assert items[1].request_id == 10
    assert items[2] == NICK
    assert isinstance(items[3], InvalidMessage)
    assert items[3].request_id is None
    assert items[4] == PING
    assert session.protocol_errors == 2
    # receive_data only decodes; the state moves when the server grants a request.
    assert session.state is State.HELLO


def test_receive_data_across_chunks() -> None:
    session = ServerSession()
    data = encode(HELLO) + encode(NICK)
    assert session.receive_data(data[:5]) == []
    assert session.receive_data(data[5:-3]) == [HELLO]
    assert session.receive_data(data[-3:]) == [NICK]


def test_bad_frame_ends_the_list_and_closes() -> None:
    session = ServerSession()
    items = session.receive_data(encode(HELLO) + b"not json\n" + encode(PING))
    assert len(items) == 2
    assert items[0] == HELLO
    assert isinstance(items[1], MalformedFrame)
    assert items[1].code is ErrorCode.BAD_FRAME
    assert session.state is State.CLOSED
    assert session.receive_data(encode(PING)) == []


def test_frame_too_large_closes() -> None:
    session = ServerSession(max_frame_bytes=64)
    items = session.receive_data(b"x" * 100)
    assert len(items) == 1
    assert isinstance(items[0], FrameTooLarge)
    assert session.state is State.CLOSED
    assert session.receive_data(encode(PING)) == []


def test_default_frame_limit_is_the_protocol_limit() -> None:
    session = ServerSession()
    assert session.receive_data(b"x" * (limits.MAX_CLIENT_FRAME_BYTES - 1)) == []
    items = session.receive_data(b"x")
    assert isinstance(items[0], FrameTooLarge)


def test_invalid_messages_up_to_the_limit_are_tolerated() -> None:
    session = ServerSession()
    bad = b'{"type":"frobnicate","id":1}\n'
    items = session.receive_data(bad * MAX_PROTOCOL_ERRORS)
    assert len(items) == MAX_PROTOCOL_ERRORS
    assert all(isinstance(item, InvalidMessage) for item in items)
    assert session.state is State.HELLO
    assert session.receive_data(encode(HELLO)) == [HELLO]


def test_too_many_invalid_messages_close() -> None:
    session = ServerSession()
    bad = b'{"type":"frobnicate","id":1}\n'
    items = session.receive_data(bad * (MAX_PROTOCOL_ERRORS + 5) + encode(HELLO))
    assert len(items) == MAX_PROTOCOL_ERRORS + 2
    assert all(isinstance(item, InvalidMessage) for item in items[:-1])
    last = items[-1]
    assert isinstance(last, PeerError)
    assert last.code is ErrorCode.TOO_MANY_ERRORS
    assert last.closes_connection
    assert session.state is State.CLOSED
    assert session.receive_data(encode(HELLO)) == []


def test_too_many_errors_counted_across_chunks_and_count_error() -> None:
    session = ServerSession()
    for _ in range(MAX_PROTOCOL_ERRORS - 1):
        assert session.count_error() is None
    items = session.receive_data(b"[]\n")
    assert len(items) == 1
    assert session.state is State.HELLO
    items = session.receive_data(b"[]\n")
    assert [getattr(item, "code", None) for item in items] == [
        ErrorCode.INVALID_MESSAGE,
        ErrorCode.TOO_MANY_ERRORS,
    ]
    assert session.state is State.CLOSED


def test_choose_version() -> None:
    assert choose_version([1]) == 1
    assert choose_version([3, 1, 2]) == max(limits.SUPPORTED_VERSIONS)
    assert choose_version([*limits.SUPPORTED_VERSIONS, 99]) == max(limits.SUPPORTED_VERSIONS)


@pytest.mark.parametrize("offered", [[99], [0], [-1, 2**70]])
def test_choose_version_rejects_unknown(offered: list[int]) -> None:
    with pytest.raises(PeerError) as info:
        choose_version(offered)
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert info.value.closes_connection


# --- ClientSession -------------------------------------------------------------------------


def test_client_request_ids_increase() -> None:
    session = ClientSession()
    assert [session.next_request_id() for _ in range(3)] == [1, 2, 3]


def test_client_decodes_server_frames() -> None:
    session = ClientSession()
    frames = [
        Welcome(id=1, version=1, server="s", max_frame_bytes=65536, max_text_chars=4000),
        Ok(id=2, nick="alice"),
        Joined(room="#general", nick="bob"),
        Pong(id=3),
    ]
    data = b"".join(encode(frame) for frame in frames)
    assert session.receive_data(data[:7]) == []
    assert session.receive_data(data[7:]) == frames


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"garbage\n", MalformedFrame),
        (b'{"type":"ping","id":1}\n', InvalidMessage),
        (b'{"type":"pong"}\n', InvalidMessage),
    ],
)
def test_client_raises_on_garbage(data: bytes, error: type[PeerError]) -> None:
    with pytest.raises(error):
        ClientSession().receive_data(data)


def test_client_rejects_oversized_server_frame() -> None:
    session = ClientSession(max_frame_bytes=32)
    with pytest.raises(FrameTooLarge):
        session.receive_data(b"x" * 40)
