"""The client's settings file: defaults, TOML, clear errors, NO_COLOR."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.client.settings import ClientSettings, SettingsError, load


def test_a_missing_file_means_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path / "client.toml", environ={}) == ClientSettings()


def test_the_file_sets_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text(
        'host = "chat.example.org"\nport = 7000\nnick = "Alice"\ncolours = false\n'
        'timestamp_format = "%H:%M:%S"\ntheme = "light"\n'
    )
    settings = load(path, environ={})
    assert (settings.host, settings.port, settings.nick) == ("chat.example.org", 7000, "Alice")
    assert (settings.colours, settings.timestamp_format, settings.theme) == (
        False,
        "%H:%M:%S",
        "light",
    )


def test_no_color_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text("colours = true\n")
    assert not load(path, environ={"NO_COLOR": "1"}).colours
    assert load(path, environ={"NO_COLOR": ""}).colours  # set but empty: no effect


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("prot = 7000\n", "unknown setting 'prot'"),
        ('port = "7000"\n', "port must be a int"),
        ("port = true\n", "port must be a int"),
        ("port = 70000\n", "port must be from 1 to 65535"),
        ('theme = "neon"\n', "theme must be one of dark, light"),
        ('timestamp_format = "%H:%M %Z"\n', "timestamp_format may use only"),
        ('timestamp_format = "%H%"\n', "timestamp_format may use only"),
        ("scrollback_lines = 5\n", "scrollback_lines must be"),
        ("port = \n", "client.toml"),  # not TOML at all
    ],
)
def test_a_wrong_setting_is_named(tmp_path: Path, body: str, complaint: str) -> None:
    path = tmp_path / "client.toml"
    path.write_text(body)
    with pytest.raises(SettingsError, match=r"client\.toml") as raised:
        load(path, environ={})
    assert complaint in str(raised.value)
