"""The client's settings: defaults, then ``client.toml`` in the user's config dir, then the
command line. ``NO_COLOR`` (https://no-color.org) switches colours off whatever the file says.

A setting that is misspelt or of the wrong type is an error naming the file and the setting:
a typo must not silently do nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from parley.paths import default_config_dir

FILE_NAME = "client.toml"
THEMES = ("dark", "light")
# Strftime codes allowed in timestamp_format: enough for any clock, nothing that can grow
# without bound or show the user's locale data unasked.
_TIME_CODES = set("HIMSpYmdbaj%")


class SettingsError(ValueError):
    """The settings file cannot be used; the message says where and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClientSettings:
    host: str = "127.0.0.1"
    port: int = 7976
    # Asked for at start when unset.
    nick: str = ""
    colours: bool = True
    # Before each line in the full-screen client; "%H:%M:%S" for seconds.
    timestamp_format: str = "%H:%M"
    theme: str = "dark"
    # Lines kept per window in the full-screen client.
    scrollback_lines: int = 5000
    # Where /get saves files; "" for the user's downloads folder.
    downloads_dir: str = ""

    def replace(self, **changes: Any) -> ClientSettings:
        return dataclasses.replace(self, **changes)

    def downloads(self) -> Path:
        if self.downloads_dir:
            return Path(self.downloads_dir).expanduser()
        return Path(platformdirs.user_downloads_dir())


def default_path() -> Path:
    return default_config_dir() / FILE_NAME


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> ClientSettings:
    """The settings in ``path`` (default: the user's ``client.toml``; a missing file means
    the defaults). Raises SettingsError.
    """
    path = default_path() if path is None else path
    environ = os.environ if environ is None else environ
    try:
        with path.open("rb") as file:
            values = tomllib.load(file)
    except FileNotFoundError:
        values = {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    settings = from_mapping(values, source=str(path))
    if environ.get("NO_COLOR"):
        settings = settings.replace(colours=False)
    return settings


def from_mapping(values: Mapping[str, Any], source: str = "settings") -> ClientSettings:
    """Settings from a mapping such as a parsed TOML file. Raises SettingsError."""
    fields = {field.name: field for field in dataclasses.fields(ClientSettings)}
    given: dict[str, Any] = {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            known = ", ".join(sorted(fields))
            raise SettingsError(f"{source}: unknown setting {name!r} (known: {known})")
        expected = type(getattr(ClientSettings(), name))
        # bool is an int in Python; a port of `true` is still wrong.
        if type(value) is not expected:
            raise SettingsError(
                f"{source}: {name} must be a {expected.__name__}, not {type(value).__name__}"
            )
        given[name] = value
    settings = ClientSettings(**given)
    _check(settings, source)
    return settings


def _check(settings: ClientSettings, source: str) -> None:
    if not 1 <= settings.port <= 65535:
        raise SettingsError(f"{source}: port must be from 1 to 65535")
    if settings.theme not in THEMES:
        raise SettingsError(f"{source}: theme must be one of {', '.join(THEMES)}")
    if not 100 <= settings.scrollback_lines <= 1_000_000:
        raise SettingsError(f"{source}: scrollback_lines must be from 100 to 1000000")
    stamp = settings.timestamp_format
    codes = [stamp[i + 1 : i + 2] for i, char in enumerate(stamp) if char == "%"]
    if len(stamp) > 40 or any(code not in _TIME_CODES for code in codes):
        raise SettingsError(
            f"{source}: timestamp_format may use only %H %I %M %S %p %Y %m %d %b %a %j, "
            "within 40 characters"
        )
