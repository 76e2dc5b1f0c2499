"""File names from others, cleaned before they are shown or saved."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.protocol.errors import PeerError
from parley.protocol.filenames import clean_file_name
from parley.protocol.files import FileNotice, human_size, notice_text, parse_notice


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\file.txt", "file.txt"),
        ("  .bashrc ", "bashrc"),
        ("name. . .", "name"),
        ("LPT1.log", "_LPT1.log"),
        ("con", "_con"),
        ("what?.txt", "what_.txt"),
        ("tab\there.txt", "tab_here.txt"),
        ("e\u0301t\u00e9.txt", "\u00e9t\u00e9.txt"),  # NFC
    ],
)
def test_names_are_cleaned(raw: str, clean: str) -> None:
    assert clean_file_name(raw) == clean


@pytest.mark.parametrize("raw", ["", ".", "..", "/", "\\", " . ", "\x00", "???"])
def test_nothing_usable_is_refused(raw: str) -> None:
    with pytest.raises(PeerError, match="usable name"):
        clean_file_name(raw)


@given(st.text(max_size=2000))
def test_any_name_is_safe_or_refused(raw: str) -> None:
    try:
        name = clean_file_name(raw)
    except PeerError:
        return
    assert 0 < len(name) <= 255
    assert "/" not in name and "\\" not in name
    assert not name.startswith(".") and name not in (".", "..")
    assert all(ord(c) >= 32 and not 0x7F <= ord(c) <= 0x9F for c in name)
    assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in name)


def test_a_long_name_keeps_its_extension() -> None:
    assert clean_file_name("a" * 300 + ".tar.gz") == "a" * 252 + ".gz"


def test_announcements_round_trip_and_other_text_is_not_one() -> None:
    notice = FileNotice("a" * 32, 'quote " and ünïcode.txt', 12, "b" * 64)
    assert parse_notice(notice_text(notice)) == notice
    for text in ("hello", "/file", "/file {not json", '/file {"id":1}'):
        assert parse_notice(text) is None


def test_sizes_in_binary_units_as_the_settings_are_written() -> None:
    sizes = (0, 1023, 1234, 2_400_000, 100 * 2**20, 2**30, 5 * 10**15)
    assert [human_size(n) for n in sizes] == [
        "0 bytes",
        "1023 bytes",
        "1.2 KiB",
        "2.3 MiB",
        "100 MiB",
        "1 GiB",
        "4547.5 TiB",
    ]
