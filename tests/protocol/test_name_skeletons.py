"""Look-alike and invisible names (Unicode TR39), and text or file names that show nothing."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.filenames import clean_file_name
from parley.protocol.names import (
    name_skeleton,
    nick_key,
    normalize_nick,
    normalize_room,
    skeleton,
)
from parley.protocol.text import check_message_text, is_invisible

CYRILLIC_A = "\u0410"
CYRILLIC_E = "\u0435"
CYRILLIC_O = "\u043e"

# --- the TR39 skeleton ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Mappings of confusables.txt that UTS #39 and its readers use as examples.
        ("paypal", "paypal"),
        ("\u0440\u0430\u0443\u0440\u0430l", "paypal"),  # Cyrillic er, a, u, er, a; Latin l
        ("m", "rn"),
        ("rn", "rn"),
        ("0", "O"),
        ("1", "l"),
        ("I", "l"),
        ("\u01c9", "lj"),  # ǉ, one character
        ("\u0430", "a"),
        ("\u0391", "A"),  # Greek capital alpha
        ("\u13aa", "A"),  # Cherokee GO
        ("\u212a", "K"),  # Kelvin sign
    ],
)
def test_skeleton_maps_to_prototypes(text: str, expected: str) -> None:
    assert skeleton(text) == expected


@given(st.text(max_size=20))
def test_skeleton_is_idempotent_and_nfd(text: str) -> None:
    once = skeleton(text)
    assert skeleton(once) == once
    assert unicodedata.normalize("NFD", once) == once


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Alice", CYRILLIC_A + "lice"),
        ("Alice", "aIice"),  # capital I for small l
        ("Alice", "ALICE"),  # the key makes these one name, and so does the skeleton
        ("Bob", "B" + CYRILLIC_O + "b"),
        ("Bob", "B0b"),  # zero for O
        ("mary", "rnary"),
        ("#general", "#g" + CYRILLIC_E + "neral"),
        ("#general", "#GENERAL"),
    ],
)
def test_look_alikes_share_a_name_skeleton(first: str, second: str) -> None:
    if nick_key(first) != nick_key(second):
        assert name_skeleton(first) == name_skeleton(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Alice", "Alicia"),
        ("Bob", "Bobby"),
        ("#general", "#generals"),
        ("\u0410\u043b\u0438\u0441\u0430", "Alisa"),  # Алиса is not Latin Alisa
    ],
)
def test_different_names_have_different_skeletons(first: str, second: str) -> None:
    assert name_skeleton(first) != name_skeleton(second)


# Latin letters and their Cyrillic look-alikes.
_HOMOGLYPHS = dict(
    zip("aceopxyABH", "\u0430\u0441\u0435\u043e\u0440\u0445\u0443\u0410\u0412\u041d", strict=True)
)


@given(
    st.text(alphabet="acepoxyABHbdfgklmnrstuvwz_-", min_size=1, max_size=20),
    st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_any_swap_of_latin_letters_for_cyrillic_ones_keeps_the_skeleton(
    name: str, swaps: list[bool]
) -> None:
    spoof = "".join(
        _HOMOGLYPHS.get(char, char) if swap else char
        for char, swap in zip(name, swaps, strict=False)
    )
    assert name_skeleton(spoof) == name_skeleton(name)


# --- invisible characters and mixed scripts in names -------------------------------------


@pytest.mark.parametrize(
    "nick",
    [
        pytest.param("Alice\u034f", id="combining-grapheme-joiner"),
        pytest.param("Ali\u034fce", id="cgj-inside"),
        pytest.param("Alice\ufe0f", id="variation-selector-16"),
        pytest.param("Alice\ufe00", id="variation-selector-1"),
        pytest.param("Alice\U000e0100", id="variation-selector-17"),
        pytest.param("\u3164", id="hangul-filler"),
        pytest.param("\u115f\u1160", id="hangul-choseong-jungseong-fillers"),
        pytest.param("\uffa0", id="halfwidth-hangul-filler"),
        pytest.param("Alice\u17b4", id="khmer-inherent-vowel"),
        pytest.param("Alice\U000e0041", id="tag-letter"),
    ],
)
def test_invisible_characters_are_refused_in_nicks(nick: str) -> None:
    with pytest.raises(PeerError) as info:
        normalize_nick(nick)
    assert info.value.code is ErrorCode.INVALID_NICK
    assert "invisible" in info.value.detail


@pytest.mark.parametrize(
    "nick",
    [
        pytest.param(CYRILLIC_A + "lice", id="latin-cyrillic"),
        pytest.param("Alic\u03b5", id="latin-greek"),
        pytest.param("\u0430\u03b1", id="cyrillic-greek"),
        pytest.param("abc\u0561\u0562\u0627", id="latin-armenian-arabic"),
    ],
)
def test_mixed_scripts_beyond_moderately_restrictive_are_refused(nick: str) -> None:
    with pytest.raises(PeerError) as info:
        normalize_nick(nick)
    assert info.value.code is ErrorCode.INVALID_NICK
    assert "scripts" in info.value.detail


@pytest.mark.parametrize(
    "nick",
    [
        "\u0410\u043b\u0438\u0441\u0430",  # Алиса: Cyrillic alone
        "\u0395\u03bb\u03ad\u03bd\u03b7",  # Ελένη: Greek alone
        "Tokyo\u6771\u4eac",  # Latin with Han
        "Yuki\u3086\u304d",  # Latin with Hiragana
        "Kim\uae40",  # Latin with Hangul
        "Ani\u0531\u0576\u056b",  # Latin with Armenian (not a Latin look-alike script)
        "Vardan_2",
    ],
)
def test_scripts_within_moderately_restrictive_are_kept(nick: str) -> None:
    assert normalize_nick(nick) == nick


def test_digits_of_two_numbering_systems_are_refused() -> None:
    with pytest.raises(PeerError) as info:
        normalize_nick("a1\u0663")  # Latin 1 and Arabic-Indic 3
    assert "digits" in info.value.detail


@pytest.mark.parametrize(
    "room",
    [
        "#general\u034f",
        "#g" + CYRILLIC_E + "neral",
        "#gen\ufe0feral",
        "#\u3164",
    ],
)
def test_invisible_and_mixed_script_room_names_are_refused(room: str) -> None:
    with pytest.raises(PeerError) as info:
        normalize_room(room)
    assert info.value.code is ErrorCode.INVALID_ROOM


def test_single_script_room_names_are_kept() -> None:
    for room in ["#general", "#\u043e\u0431\u0449\u0438\u0439", "#\u6771\u4eac", "#v2.0-beta"]:
        assert normalize_room(room) == room


# --- text and file names that show nothing -------------------------------------------------

INVISIBLE_TEXTS = [
    pytest.param("\u200b", id="zero-width-space"),
    pytest.param("\u200b\u200c\u200d\u2060", id="zero-width-mix"),
    pytest.param("\ufeff", id="bom"),
    pytest.param("\u034f\u034f", id="cgj"),
    pytest.param("\ufe0f", id="variation-selector"),
    pytest.param("\u3164\u3164", id="hangul-fillers"),
    pytest.param("\u2800", id="braille-blank"),
    pytest.param(" \u200b \t", id="spaces-and-zero-width"),
    pytest.param("\u00ad", id="soft-hyphen"),
    pytest.param("\U000e0020\U000e0041", id="tags"),
]


@pytest.mark.parametrize("text", INVISIBLE_TEXTS)
def test_a_message_that_shows_nothing_is_refused(text: str) -> None:
    assert is_invisible(text)
    with pytest.raises(PeerError) as info:
        check_message_text(text)
    assert info.value.code is ErrorCode.INVALID_TEXT
    assert "invisible" in info.value.detail


@pytest.mark.parametrize("text", ["hi\u200b", "\u200b.", "\u3164x", "\U0001f600", "\u2801"])
def test_a_message_with_one_visible_character_is_kept(text: str) -> None:
    assert not is_invisible(text)
    assert check_message_text(text) == text


@given(
    st.text(alphabet=st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\u034f\u3164 "), max_size=40)
)
def test_any_string_of_invisible_characters_is_refused(text: str) -> None:
    with pytest.raises(PeerError):
        check_message_text(text)


@pytest.mark.parametrize("name", ["\u200b", "\u200b\u200b.\u200b", "_\u3164_", "\u2060.\u200b"])
def test_a_file_name_that_shows_nothing_is_refused(name: str) -> None:
    with pytest.raises(PeerError) as info:
        clean_file_name(name)
    assert info.value.code is ErrorCode.INVALID_FILE
    assert "visible" in info.value.detail


def test_a_file_name_with_something_visible_is_kept() -> None:
    assert clean_file_name("\u200breport.pdf") == "\u200breport.pdf"
    assert clean_file_name("\u200b.txt") == "\u200b.txt"
