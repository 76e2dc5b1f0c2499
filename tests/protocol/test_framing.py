"""LineFramer: frames split out of a byte stream, with the size limit enforced before buffering."""

import pytest

from parley.protocol.errors import ErrorCode, FrameTooLarge
from parley.protocol.framing import LineFramer

LIMIT = 16


def test_one_frame() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"hello\n") == [b"hello"]
    assert framer.buffered_bytes == 0


def test_many_frames_in_one_chunk() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"one\ntwo\nthree\n") == [b"one", b"two", b"three"]


def test_unfinished_frame_is_kept_for_the_next_chunk() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"one\ntw") == [b"one"]
    assert framer.buffered_bytes == 2
    assert framer.feed(b"o\nthr") == [b"two"]
    assert framer.feed(b"ee\n") == [b"three"]
    assert framer.buffered_bytes == 0


def test_frame_fed_one_byte_at_a_time() -> None:
    framer = LineFramer(LIMIT)
    frames: list[bytes] = []
    for byte in b"abc\ndef\n":
        frames += framer.feed(bytes([byte]))
    assert frames == [b"abc", b"def"]


def test_frames_split_at_every_position() -> None:
    stream = b'{"a":1}\nxy\n\nlast one\n'
    expected = [b'{"a":1}', b"xy", b"last one"]
    for split in range(len(stream) + 1):
        framer = LineFramer(LIMIT)
        frames = framer.feed(stream[:split]) + framer.feed(stream[split:])
        assert frames == expected, f"split at {split}"
        assert framer.buffered_bytes == 0


def test_frames_split_at_every_pair_of_positions() -> None:
    stream = b"ab\ncd\nef\n"
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            framer = LineFramer(LIMIT)
            chunks = [stream[:first], stream[first:second], stream[second:]]
            frames = [frame for chunk in chunks for frame in framer.feed(chunk)]
            assert frames == [b"ab", b"cd", b"ef"], (first, second)


def test_empty_lines_are_skipped() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"\n\na\n\n\nb\n\n") == [b"a", b"b"]
    assert framer.feed(b"\n") == []


def test_blank_lines_including_crlf_are_skipped() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"\r\n \n\t\r\na\r\n\r") == [b"a\r"]
    assert framer.feed(b"\n") == []


def test_empty_line_after_buffered_frame_is_skipped() -> None:
    framer = LineFramer(LIMIT)
    assert framer.feed(b"a") == []
    assert framer.feed(b"\n\n\nb\n") == [b"a", b"b"]


def test_frame_exactly_at_limit_is_accepted() -> None:
    framer = LineFramer(LIMIT)
    frame = b"x" * (LIMIT - 1)  # plus the newline: LIMIT bytes
    assert framer.feed(frame + b"\n") == [frame]


def test_frame_one_byte_over_limit_is_rejected() -> None:
    framer = LineFramer(LIMIT)
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"x" * LIMIT + b"\n")
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert info.value.closes_connection


def test_limit_applies_to_a_frame_finished_across_chunks() -> None:
    framer = LineFramer(LIMIT)
    framer.feed(b"x" * (LIMIT - 1))
    assert framer.feed(b"\n") == [b"x" * (LIMIT - 1)]

    framer = LineFramer(LIMIT)
    framer.feed(b"x" * 10)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x" * (LIMIT - 10) + b"\n")


def test_oversized_frame_among_good_ones_is_rejected() -> None:
    framer = LineFramer(LIMIT)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"ok\n" + b"x" * LIMIT + b"\nok\n")


def test_unfinished_frame_over_limit_is_rejected_before_its_newline() -> None:
    framer = LineFramer(LIMIT)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x" * LIMIT)
    assert framer.buffered_bytes <= LIMIT


def test_trickled_unfinished_frame_is_rejected_while_memory_stays_bounded() -> None:
    framer = LineFramer(LIMIT)
    for _ in range(LIMIT - 1):
        assert framer.feed(b"x") == []
    assert framer.buffered_bytes == LIMIT - 1
    # The next byte makes a frame that can no longer fit: rejected now, not at its newline.
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x")
    assert framer.buffered_bytes <= LIMIT


def test_unfinished_frame_in_big_chunks_is_rejected_with_bounded_buffer() -> None:
    framer = LineFramer(LIMIT)
    for _ in range(3):
        assert framer.feed(b"x" * 5) == []
    assert framer.buffered_bytes == 15
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x" * 5)
    assert framer.buffered_bytes <= LIMIT


def test_trickled_large_legal_frame_is_accepted() -> None:
    limit = 64 * 1024
    framer = LineFramer(limit)
    frame = bytes(range(256)).replace(b"\n", b"") * ((limit - 1) // 255)
    frame = frame[: limit - 1]
    assert len(frame) == limit - 1
    frames: list[bytes] = []
    for start in range(0, len(frame), 7):
        frames += framer.feed(frame[start : start + 7])
    assert frames == []
    assert framer.buffered_bytes == limit - 1
    assert framer.feed(b"\nnext\n") == [frame, b"next"]
    assert framer.buffered_bytes == 0
