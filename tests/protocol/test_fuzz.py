"""Property tests: the protocol layer never fails in a way its callers do not expect."""

import itertools
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.protocol.errors import InvalidMessage, MalformedFrame, PeerError
from parley.protocol.framing import LineFramer
from parley.protocol.messages import Bye, Hello, ListUsers, Nick, Ping, Send, decode_request
from parley.protocol.session import ServerSession
from parley.protocol.text import for_terminal

REQUEST_TYPES = (Hello, Nick, Send, ListUsers, Ping, Bye)
# Bidi embeddings/overrides/isolates, and the Unicode line and paragraph separators.
UNSAFE = frozenset(chr(c) for c in [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])

# Bytes that look a little like frames, so the decoder gets past its first character.
json_ish = st.lists(
    st.sampled_from(
        [
            *(b"{", b"}", b"[", b"]", b'"', b":", b",", b"\\", b"\n", b"-1", b"0", b"2", b"1e9"),
            *(b'"type"', b'"id"', b'"ping"', b'"hello"', b'"send"', b'"text"', b"null", b"true"),
            *(b"\xff", b"\xc3", b"\xed\xa0\x80", b"\\ud800", "é".encode(), b" "),
        ]
    ),
    max_size=40,
).map(b"".join)
frame_bytes = st.one_of(st.binary(max_size=200), json_ish)
FAST = settings(max_examples=300, deadline=None)


@FAST
@given(frame_bytes)
def test_decode_request_raises_only_peer_errors(line: bytes) -> None:
    # Anything but MalformedFrame or InvalidMessage propagates and fails the test.
    try:
        request = decode_request(line)
    except (MalformedFrame, InvalidMessage):
        return
    assert isinstance(request, REQUEST_TYPES)


@FAST
@given(st.lists(st.one_of(frame_bytes, frame_bytes.map(lambda b: b + b"\n")), max_size=10))
def test_server_session_never_raises(chunks: list[bytes]) -> None:
    session = ServerSession(max_frame_bytes=128)
    for chunk in chunks:
        for item in session.receive_data(chunk):
            assert isinstance(item, (*REQUEST_TYPES, PeerError))


frames = st.lists(
    st.binary(max_size=63).filter(lambda b: b"\n" not in b),
    max_size=10,
)


@FAST
@given(frames, st.data())
def test_framer_returns_the_frames_however_they_are_split(
    frame_list: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frame + b"\n" for frame in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    bounds = [0, *cuts, len(stream)]
    framer = LineFramer(64)
    received: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        received += framer.feed(stream[start:end])
    # Blank lines (empty, or whitespace such as a lone CR) are keep-alives and skipped.
    assert received == [frame for frame in frame_list if frame and not frame.isspace()]
    assert framer.buffered_bytes == 0


@FAST
@given(st.text(st.characters(codec=None, exclude_categories=["Cs"]), max_size=100))
def test_for_terminal_output_is_always_safe(text: str) -> None:
    safe = for_terminal(text)
    for char in safe:
        assert unicodedata.category(char) != "Cc"
        assert char not in UNSAFE


CONTROL_HEAVY = "\x00\x07\x1b\x7f\x85\x9b\u202e\u2066\u2028\t\n\r[]0;2Jaé"


@FAST
@given(st.text(st.sampled_from(CONTROL_HEAVY), max_size=50))
def test_for_terminal_on_control_heavy_text(text: str) -> None:
    safe = for_terminal(text)
    assert len(safe) == len(text)
    assert not any(unicodedata.category(c) == "Cc" or c in UNSAFE for c in safe)
