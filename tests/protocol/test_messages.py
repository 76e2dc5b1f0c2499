"""Wire messages: encode/decode round trips, and the two kinds of decode error."""

import json

import pytest

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, InvalidMessage, MalformedFrame, PeerError
from parley.protocol.messages import (
    Bye,
    Closing,
    Error,
    GoingAway,
    Hello,
    Joined,
    Left,
    ListUsers,
    Message,
    Nick,
    Notice,
    Ok,
    Ping,
    Pong,
    Request,
    Send,
    Sent,
    ServerFrame,
    Users,
    Welcome,
    decode_request,
    decode_server_frame,
    encode,
)
from parley.protocol.text import check_message_text

REQUESTS: list[Request] = [
    Hello(id=1, versions=[1, 2], client="parley-test 0.1"),
    Hello(id=0, versions=[1]),
    Nick(id=2, nick="Zoë"),
    Send(id=3, to="#general", text="hello, world \u202e ✓", msg_id="m-1"),
    Send(id=2**53, to="bob", text="x" * limits.MAX_TEXT_CHARS, msg_id="u" * 64),
    ListUsers(id=4),
    Ping(id=5),
    Bye(id=6),
]

SERVER_FRAMES: list[ServerFrame] = [
    Welcome(id=1, version=1, server="parley 0.1", max_frame_bytes=65536, max_text_chars=4000),
    Ok(id=2),
    Ok(id=2, nick="Zoë"),
    Sent(id=3, seq=7, ts=1_700_000_000_000),
    Sent(id=3, seq=7, ts=1_700_000_000_000, duplicate=True),
    Users(id=4, users=["alice", "bob"], total=2),
    Users(id=4, users=[], total=0),
    Pong(id=5),
    Error(code="nick-taken", message="That nickname is already taken.", id=6),
    Error(code="bad-frame", message="The data sent is not a valid Parley frame."),
    Message(to="#general", sender="alice", text="hi ☃", seq=1, ts=2, msg_id="m"),
    Joined(room="#general", nick="alice"),
    Left(room="#general", nick="alice"),
    Notice(text="Welcome to Parley."),
    GoingAway(seconds=10.0, message="This server is restarting: carry on elsewhere."),
    Closing(code="server-shutdown", message="The server is shutting down."),
]


def _tag(frame: Request | ServerFrame) -> str:
    return type(frame).__struct_config__.tag


@pytest.mark.parametrize("request_", REQUESTS, ids=_tag)
def test_request_round_trip(request_: Request) -> None:
    wire = encode(request_)
    assert wire.endswith(b"\n")
    assert wire.count(b"\n") == 1
    assert json.loads(wire)["type"] == _tag(request_)
    assert decode_request(wire[:-1]) == request_


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=_tag)
def test_server_frame_round_trip(frame: ServerFrame) -> None:
    wire = encode(frame)
    assert wire.endswith(b"\n")
    assert wire.count(b"\n") == 1
    assert json.loads(wire)["type"] == _tag(frame)
    assert decode_server_frame(wire[:-1]) == frame


def test_every_request_and_server_frame_type_is_covered() -> None:
    assert {type(r) for r in REQUESTS} == {Hello, Nick, Send, ListUsers, Ping, Bye}
    assert {type(f) for f in SERVER_FRAMES} == {
        Welcome,
        Ok,
        Sent,
        Users,
        Pong,
        Error,
        Message,
        Joined,
        Left,
        Notice,
        GoingAway,
        Closing,
    }


def test_error_without_id_decodes_with_id_none() -> None:
    assert decode_server_frame(b'{"type":"error","code":"x","message":"y","id":null}') == Error(
        code="x", message="y"
    )


def test_unknown_fields_are_ignored() -> None:
    assert decode_request(b'{"type":"ping","id":9,"future":[1,{"a":2}]}') == Ping(id=9)


def test_server_frame_is_not_a_request() -> None:
    with pytest.raises(InvalidMessage):
        decode_request(encode(Pong(id=1))[:-1])
    with pytest.raises(InvalidMessage):
        decode_server_frame(encode(Ping(id=1))[:-1])


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="text"),
        pytest.param(b'{"type":"ping","id":1', id="truncated"),
        pytest.param(b'{"type":"ping","id":1}{}', id="trailing"),
        pytest.param(b"{'type':'ping','id':1}", id="single-quotes"),
        pytest.param(b"\xff\xfe", id="raw-invalid-utf8"),
        pytest.param(b'{"type":"ping","id":1}\xff', id="invalid-utf8-after-object"),
        pytest.param(b'{"type":"nick","id":4,"nick":"\xc3("}', id="invalid-utf8-in-string"),
        pytest.param(
            b'{"type":"send","id":5,"to":"a","text":"\xed\xa0\x80","msg_id":"m"}',
            id="encoded-surrogate-in-string",
        ),
        pytest.param(
            b'{"type":"send","id":5,"to":"a","text":"\\ud800","msg_id":"m"}',
            id="lone-surrogate-escape",
        ),
        # Validation may fail on an early field before the parser reaches the broken part.
        pytest.param(b'{"type":"frobnicate","id":1', id="unknown-type-truncated"),
        pytest.param(b'{"type":"frobnicate",,,}', id="unknown-type-then-garbage"),
        pytest.param(b'{"type":"ping","id":"x"', id="wrong-field-then-truncated"),
        pytest.param(b"[1,", id="array-truncated"),
        pytest.param(b'{"type":"ping","id":-1,"x":"\xff"}', id="wrong-field-then-bad-utf8"),
        pytest.param(b'{"id":5,"type":"zz", garbage', id="id-then-garbage"),
    ],
)
def test_malformed_frame(line: bytes) -> None:
    for decode in (decode_request, decode_server_frame):
        with pytest.raises(MalformedFrame) as info:
            decode(line)
        assert info.value.code is ErrorCode.BAD_FRAME
        assert info.value.closes_connection


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b"42", id="number"),
        pytest.param(b'"ping"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="no-type"),
        pytest.param(b'{"type":"frobnicate"}', id="unknown-type"),
        pytest.param(b'{"type":7}', id="type-not-string"),
        pytest.param(b'{"type":"ping"}', id="missing-id"),
        pytest.param(b'{"type":"ping","id":-1}', id="negative-id"),
        pytest.param(b'{"type":"ping","id":9007199254740993}', id="id-too-large"),
        pytest.param(b'{"type":"ping","id":1.5}', id="float-id"),
        pytest.param(b'{"type":"ping","id":"1"}', id="string-id"),
        pytest.param(b'{"type":"hello","id":1}', id="hello-missing-versions"),
        pytest.param(b'{"type":"hello","id":1,"versions":[]}', id="hello-no-versions"),
        pytest.param(b'{"type":"hello","id":1,"versions":"1"}', id="hello-versions-str"),
        pytest.param(b'{"type":"nick","id":1}', id="nick-missing"),
        pytest.param(b'{"type":"nick","id":1,"nick":["a"]}', id="nick-list"),
        pytest.param(b'{"type":"send","id":1,"to":"a","msg_id":"m"}', id="send-missing-text"),
        pytest.param(b'{"type":"send","id":1,"to":"a","text":5,"msg_id":"m"}', id="text-int"),
        pytest.param(b'{"type":"send","id":1,"to":"a","text":"t","msg_id":""}', id="empty-msg-id"),
    ],
)
def test_invalid_request(line: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_request(line)
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert not info.value.closes_connection


def test_text_length_is_left_to_the_text_rules() -> None:
    # The decoder bounds text only by the frame size; check_message_text answers an overlong
    # message with the specific invalid-text code rather than a generic invalid-message.
    long = Send(id=8, to="#general", text="é" * (limits.MAX_TEXT_CHARS + 1), msg_id="m")
    decoded = decode_request(encode(long)[:-1])
    assert decoded == long
    assert isinstance(decoded, Send)
    with pytest.raises(PeerError) as info:
        check_message_text(decoded.text)
    assert info.value.code is ErrorCode.INVALID_TEXT


def test_msg_id_over_limit_is_invalid_message() -> None:
    line = json.dumps(
        {"type": "send", "id": 8, "to": "#general", "text": "hi"}
        | {"msg_id": "m" * (limits.MAX_MSG_ID_CHARS + 1)}
    ).encode()
    with pytest.raises(InvalidMessage) as info:
        decode_request(line)
    assert info.value.request_id == 8


def test_client_name_over_limit_is_invalid_message() -> None:
    line = json.dumps(
        {"type": "hello", "id": 3, "versions": [1], "client": "c" * 65},
    ).encode()
    with pytest.raises(InvalidMessage) as info:
        decode_request(line)
    assert info.value.request_id == 3


@pytest.mark.parametrize(
    ("line", "request_id"),
    [
        (b'{"type":"frobnicate","id":17}', 17),
        (b'{"id":0}', 0),
        (b'{"type":"send","id":23,"to":"a","text":5,"msg_id":"m"}', 23),
        (b'{"type":"hello","id":2,"versions":[]}', 2),
        (b'{"type":"ping","id":"17"}', None),
        (b'{"type":"ping","id":-3}', None),
        (b'{"type":"ping","id":1.0}', None),
        (b'{"type":"frobnicate","id":null}', None),
        (b'{"type":"frobnicate"}', None),
        (b"[17]", None),
    ],
)
def test_invalid_message_carries_readable_request_id(line: bytes, request_id: int | None) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_request(line)
    assert info.value.request_id == request_id


def test_malformed_frame_has_no_request_id() -> None:
    with pytest.raises(MalformedFrame) as info:
        decode_request(b'{"type":"ping","id":3')
    assert info.value.request_id is None


def test_decode_errors_are_peer_errors_with_detail() -> None:
    for line in (b"{", b"[]"):
        with pytest.raises(PeerError) as info:
            decode_request(line)
        assert info.value.detail
        assert isinstance(info.value, MalformedFrame | InvalidMessage)


def test_deeply_nested_json_is_a_malformed_frame_not_a_crash() -> None:
    # 20,000 levels fit in one legal frame but exceed msgspec's recursion limit, which used to
    # escape the decoder as a RecursionError.
    depth = 20_000
    nested = b"[" * depth + b"]" * depth
    lines = [
        b'{"type":"ping","id":1,"x":' + nested + b"}",
        b'{"type":"hello","id":1,"versions":' + nested + b"}",
        b'{"type":"ping","id":1,"x":' + b"[" * depth,
    ]
    for line in lines:
        assert len(line) < limits.MAX_CLIENT_FRAME_BYTES
        for decode in (decode_request, decode_server_frame):
            with pytest.raises(MalformedFrame):
                decode(line)


def test_moderately_nested_unknown_field_is_fine() -> None:
    nested = b"[" * 50 + b"]" * 50
    assert decode_request(b'{"type":"ping","id":1,"x":' + nested + b"}") == Ping(id=1)
