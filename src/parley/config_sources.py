"""Where the server's settings come from, in order of precedence: the defaults, a TOML file,
``PARLEY_*`` environment variables, then the command line. Each effective value remembers its
source, for ``parley config check`` and for error messages.

Every setting has a variable: ``PARLEY_`` and its name in upper case (``PARLEY_PORT``,
``PARLEY_DATABASE``). Its text is read by the setting's type: numbers, ``true``/``false``
(or ``1``/``0``, ``yes``/``no``, ``on``/``off``), paths, lists as comma-separated names, and
an empty value unsets a setting that may be unset. ``PARLEY_CONFIG`` names the TOML file
when ``--config`` does not.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from parley.config import SETTINGS_DOC, ConfigError, ServerConfig, read_settings_file

ENV_PREFIX = "PARLEY_"
CONFIG_VARIABLE = "PARLEY_CONFIG"
# Variables of the test suite and the benchmarks, not settings of a server.
_NOT_SETTINGS = ("PARLEY_TEST_", "PARLEY_BENCH_")
DEFAULT = "default"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def variable(name: str) -> str:
    """The environment variable of the setting ``name``."""
    return ENV_PREFIX + name.upper()


@dataclasses.dataclass(slots=True)
class LoadedConfig:
    """The effective settings, where each came from (``default``, ``FILE:key``, a variable or
    an option), the file read (if any), and every problem met (empty when all is well). A
    setting whose value was refused keeps the one from the layer below.
    """

    config: ServerConfig
    sources: dict[str, str]
    file: Path | None
    problems: list[str]

    def require_valid(self) -> ServerConfig:
        """The settings, or ConfigError listing every problem, one a line."""
        if self.problems:
            raise ConfigError("\n".join(self.problems))
        return self.config


def load(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """The settings from every source. ``config_file`` is ``--config`` (else ``PARLEY_CONFIG``
    names it), ``overrides`` the command-line values and ``flags`` the option of each,
    ``environ`` the process environment (``os.environ`` by default).
    """
    environ = os.environ if environ is None else environ
    flags = flags or {}
    config = ServerConfig()
    fields = {field.name: field for field in dataclasses.fields(config)}
    loaded = LoadedConfig(config, {name: DEFAULT for name in fields}, None, [])

    named_by = "--config"
    if config_file is None and environ.get(CONFIG_VARIABLE):
        config_file, named_by = Path(environ[CONFIG_VARIABLE]), CONFIG_VARIABLE
    if config_file is not None:
        loaded.file = config_file
        try:
            values = read_settings_file(config_file, named_by)
        except ConfigError as exc:
            loaded.problems.append(str(exc))
            values = {}
        for name, value in values.items():
            _set(loaded, name, value, f"{config_file}:{name}")

    by_variable = {variable(name): name for name in fields}
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_VARIABLE:
            continue
        if var.startswith(_NOT_SETTINGS):
            continue
        setting = by_variable.get(var)
        if setting is None:
            # Compared without the prefix, which every name shares.
            wanted = var.removeprefix(ENV_PREFIX).lower()
            close = difflib.get_close_matches(wanted, [*fields, "config"], n=1)
            hint = f"did you mean {variable(close[0])}?" if close else f"see {SETTINGS_DOC}"
            loaded.problems.append(f"{var}: no such setting; {hint}")
            continue
        try:
            value = parse_text(fields[setting].type, environ[var])
        except ValueError as exc:
            loaded.problems.append(f"{var}: {environ[var]!r} is not {exc}. See {SETTINGS_DOC}.")
            continue
        _set(loaded, setting, value, var)

    for name, value in (overrides or {}).items():
        _set(loaded, name, value, flags.get(name, name))
    return loaded


def _set(loaded: LoadedConfig, name: str, value: Any, source: str) -> None:
    try:
        loaded.config.apply({name: value}, lambda _: source)
    except ConfigError as exc:
        loaded.problems.append(str(exc))
    else:
        loaded.sources[name] = source


def parse_text(annotation: object, text: str) -> Any:
    """An environment variable's text as a value of the setting's type (bounds and choices
    are checked after). Raises ValueError saying what the text should be.
    """
    kind = str(annotation)
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    stripped = text.strip()
    if optional and not stripped:
        return None
    if kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError("true or false (or 1 or 0, yes or no, on or off)")
    if kind == "int":
        try:
            return int(stripped)
        except ValueError:
            raise ValueError("a whole number") from None
    if kind == "float":
        try:
            return float(stripped)
        except ValueError:
            raise ValueError("a number") from None
    if kind.startswith("tuple"):
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if kind == "Path":
        if not stripped:
            raise ValueError("a path")
        return Path(text)
    return text


_SECRET_WORDS = ("password", "token", "secret")


def shown(name: str, value: Any) -> str:
    """``value`` as written in a TOML file, with secrets masked: a setting named for one, and
    the password in a URL (``postgresql://user:***@host/db``).
    """
    if value is None:
        return "(unset)"
    if any(word in name for word in _SECRET_WORDS):
        return '"***"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(shown(name, item) for item in value) + "]"
    return _quoted(mask_url(str(value)))


def mask_url(text: str) -> str:
    """``text`` with the password of a URL in it replaced by ``***``."""
    if "://" not in text:
        return text
    try:
        url = urllib.parse.urlsplit(text)
        password = url.password
    except ValueError:
        return text
    if not password:
        return text
    user = url.username or ""
    host = url.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(url._replace(netloc=f"{user}:***@{host}"))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
