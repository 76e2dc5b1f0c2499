"""Nickname rules, message text rules, and making peer text safe for a terminal."""

import unicodedata

import pytest

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.names import is_room, nick_key, normalize_nick
from parley.protocol.text import check_message_text, for_terminal

# --- normalize_nick ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nick",
    [
        "alice",
        "Bob",
        "Zoë",
        "Ålesund",
        "Дмитрий",
        "東京",
        "محمد",
        "r2d2",
        "2001",
        "under_score",
        "dash-ed",
        "_",
        "-",
        "a",
        "x" * limits.MAX_NICK_CHARS,
        "नमस्ते",  # Devanagari: combining vowel signs and virama
        "x\u0331",  # a mark with no precomposed form
    ],
)
def test_valid_nick_is_kept(nick: str) -> None:
    assert normalize_nick(nick) == nick


@pytest.mark.parametrize(
    "nick",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * (limits.MAX_NICK_CHARS + 1), id="33-chars"),
        pytest.param("two words", id="space"),
        pytest.param(" alice", id="leading-space"),
        pytest.param("alice!", id="bang"),
        pytest.param("a.b", id="dot"),
        pytest.param("a@b", id="at"),
        pytest.param("#general", id="room-like"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\nb", id="newline"),
        pytest.param("\x1b[31m", id="esc"),
        pytest.param("a\x00", id="nul"),
        pytest.param("a\x7f", id="del"),
        pytest.param("a\x9b", id="c1"),
        pytest.param("a\u202eb", id="bidi-override"),
        pytest.param("a\u200bb", id="zero-width-space"),
        pytest.param("smile😀", id="emoji"),
        pytest.param("☃", id="snowman"),
        pytest.param("\u0301a", id="leading-combining-mark"),
        pytest.param("a\u20dd", id="enclosing-mark"),
    ],
)
def test_invalid_nick_is_rejected(nick: str) -> None:
    with pytest.raises(PeerError) as info:
        normalize_nick(nick)
    assert info.value.code is ErrorCode.INVALID_NICK
    assert not info.value.closes_connection


def test_full_width_nick_is_normalised() -> None:
    assert normalize_nick("ａｌｉｃｅ") == "alice"
    assert normalize_nick("ＡＬＩＣＥ１２") == "ALICE12"


def test_decomposed_nick_is_composed() -> None:
    decomposed = "Zoe\u0308"
    assert normalize_nick(decomposed) == "Zoë"


def test_nick_length_counts_characters_after_normalisation() -> None:
    # 32 full-width letters normalise to 32 ASCII letters: still fine.
    assert normalize_nick("ａ" * limits.MAX_NICK_CHARS) == "a" * limits.MAX_NICK_CHARS
    # U+FB03 'ﬃ' is one character that NFKC expands to three.
    assert normalize_nick("\ufb03" * 10) == "ffi" * 10
    with pytest.raises(PeerError):
        normalize_nick("\ufb03" * 11)


# --- nick_key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("alice", "ALICE"),
        ("Alice", "aLiCe"),
        ("alice", "ａｌｉｃｅ"),
        ("Zoë", "ZOË"),
        ("Zoë", "zoe\u0308"),
        ("Straße", "STRASSE"),
        ("Ålesund", "ålesund"),
        ("ΣΊΣΥΦΟΣ", "σίσυφος"),
    ],
)
def test_equivalent_nicks_collide(first: str, second: str) -> None:
    assert nick_key(first) == nick_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [("alice", "alicia"), ("zoe", "zoë"), ("a-b", "a_b"), ("bob1", "bob2")],
)
def test_different_nicks_do_not_collide(first: str, second: str) -> None:
    assert nick_key(first) != nick_key(second)


def test_nick_key_is_stable() -> None:
    for nick in ("alice", "ＡＬＩＣＥ", "Straße", "Zoë"):
        key = nick_key(nick)
        assert nick_key(key) == key
        assert unicodedata.is_normalized("NFKC", key)


def test_is_room() -> None:
    assert is_room("#general")
    assert not is_room("alice")


# --- check_message_text --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "  padded  ",
        "col1\tcol2",
        "Zoë says здравствуйте, 你好 😀",
        "x",
        "é" * limits.MAX_TEXT_CHARS,
    ],
)
def test_normal_text_is_accepted(text: str) -> None:
    assert check_message_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="space"),
        pytest.param(" \t  ", id="blanks"),
        pytest.param("\u3000", id="ideographic-space"),
        pytest.param("one\ntwo", id="newline"),
        pytest.param("line\r", id="cr"),
        pytest.param("\x1b[2J", id="esc"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\x07", id="bel"),
        pytest.param("a\x08", id="backspace"),
        pytest.param("a\x7f", id="del"),
        pytest.param("a\x9b2J", id="c1-csi"),
        pytest.param("a\x85", id="c1-nel"),
        pytest.param("a\x9f", id="c1-last"),
        pytest.param("one\u2028two", id="line-separator"),
        pytest.param("one\u2029two", id="paragraph-separator"),
        pytest.param("x" * (limits.MAX_TEXT_CHARS + 1), id="too-long"),
    ],
)
def test_bad_text_is_rejected(text: str) -> None:
    with pytest.raises(PeerError) as info:
        check_message_text(text)
    assert info.value.code is ErrorCode.INVALID_TEXT
    assert not info.value.closes_connection


def test_every_control_character_but_tab_is_rejected() -> None:
    controls = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"]
    assert len(controls) == 65
    for char in controls:
        if char == "\t":
            assert check_message_text(f"a{char}b") == "a\tb"
        else:
            with pytest.raises(PeerError):
                check_message_text(f"a{char}b")


# --- for_terminal --------------------------------------------------------------------------

# Bidi embeddings/overrides/isolates, and the Unicode line and paragraph separators.
UNSAFE = {chr(c) for c in [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def _is_safe(text: str) -> bool:
    return all(unicodedata.category(c) != "Cc" and c not in UNSAFE for c in text)


@pytest.mark.parametrize(
    "text",
    [
        "\x1b[2J",
        "\x1b]0;title\x07",
        "\x1b[31mred\x1b[0m",
        "\x9b2J",
        "line\rover",
        "bell\x07",
        "nul\x00",
        "del\x7f",
        "two\nlines",
        "evil\u202etxt.exe",
        "\u2066isolated\u2069",
        "\u202aembedded\u202c",
        "fake\u2028second line",
    ],
)
def test_for_terminal_neutralises_controls(text: str) -> None:
    safe = for_terminal(text)
    assert _is_safe(safe)
    assert "\x1b" not in safe
    assert "\x07" not in safe
    assert len(safe) == len(text)


def test_for_terminal_makes_esc_visible() -> None:
    assert for_terminal("\x1b[2J") == "\u241b[2J"
    assert for_terminal("a\tb") == "a b"


@pytest.mark.parametrize(
    "text",
    ["hello, world", "Zoë", "здравствуйте", "你好 😀", "مرحبا", "a  b", "ﬃ ａ", ""],
)
def test_for_terminal_keeps_normal_text(text: str) -> None:
    assert for_terminal(text) == text


def test_for_terminal_covers_every_control_character() -> None:
    everything = "".join(chr(c) for c in range(0x3000))
    assert _is_safe(for_terminal(everything))
