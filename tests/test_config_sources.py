"""Settings from every source: defaults < TOML file < PARLEY_* variables < command line; each
error names its source, the value and what is allowed; the example file lists every setting
with its default.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from parley.config import SETTINGS_DOC, ServerConfig
from parley.config_sources import load, mask_url, shown, variable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "server.toml"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_source_wins_over_the_one_before(tmp_path: Path) -> None:
    path = _file(tmp_path, 'port = 8000\nhost = "0.0.0.0"\nmotd = "from the file"\n')
    environ = {"PARLEY_PORT": "8001", "PARLEY_MOTD": "from the environment"}
    loaded = load(path, {"port": 8002}, {"port": "--port"}, environ)
    assert loaded.problems == []
    config = loaded.config
    assert (config.port, config.host, config.motd) == (8002, "0.0.0.0", "from the environment")
    assert loaded.sources["port"] == "--port"
    assert loaded.sources["motd"] == "PARLEY_MOTD"
    assert loaded.sources["host"] == f"{path}:host"
    assert loaded.sources["max_connections"] == "default"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("port", " 8000 ", 8000),
        ("flood_rate_per_second", "2.5", 2.5),
        ("allow_guests", "false", False),
        ("allow_guests", "0", False),
        ("tcp_nodelay", "TRUE", True),
        ("tcp_nodelay", "on", True),
        ("data_dir", "/srv/parley", Path("/srv/parley")),
        ("cert_file", "", None),
        ("hostnames", "chat.example.org, 192.0.2.7,", ("chat.example.org", "192.0.2.7")),
        ("retention_days", "", None),
        ("retention_days", "365", 365),
        ("database", "postgresql://parley@db/parley", "postgresql://parley@db/parley"),
        ("log_format", "json", "json"),
    ],
)
def test_a_variable_is_read_by_the_setting_type(name: str, text: str, expected: object) -> None:
    loaded = load(environ={variable(name): text})
    assert loaded.problems == []
    assert getattr(loaded.config, name) == expected


@pytest.mark.parametrize(
    ("var", "text", "allowed"),
    [
        ("PARLEY_PORT", "http", "is not a whole number"),
        ("PARLEY_PORT", "80000", "is out of range; it must be from 0 to 65535"),
        ("PARLEY_PORT", "8000.5", "is not a whole number"),
        ("PARLEY_FLOOD_RATE_PER_SECOND", "nan", "is out of range; it must be more than 0"),
        ("PARLEY_ALLOW_GUESTS", "maybe", "is not true or false"),
        ("PARLEY_ROOM_CREATION", "nobody", "is not one of 'everyone', 'accounts'"),
        ("PARLEY_DATA_DIR", "", "is not a path"),
    ],
)
def test_a_bad_variable_names_itself_the_value_and_what_is_allowed(
    var: str, text: str, allowed: str
) -> None:
    loaded = load(environ={var: text})
    assert len(loaded.problems) == 1
    problem = loaded.problems[0]
    assert problem.startswith(f"{var}: ")
    assert repr(text) in problem or text in problem
    assert allowed in problem
    assert SETTINGS_DOC in problem
    assert loaded.config == ServerConfig()  # the refused value is not used


def test_a_bad_file_value_is_named_file_colon_key(tmp_path: Path) -> None:
    path = _file(tmp_path, "port = 70000\n")
    (problem,) = load(path, environ={}).problems
    assert problem.startswith(f"{path}:port: 70000 is out of range; it must be from 0 to 65535")
    assert SETTINGS_DOC in problem


def test_an_unknown_variable_gets_a_suggestion() -> None:
    loaded = load(environ={"PARLEY_PROT": "8000", "PARLEY_COLOUR_SCHEME": "dark"})
    assert loaded.problems == [
        f"PARLEY_COLOUR_SCHEME: no such setting; see {SETTINGS_DOC}",
        "PARLEY_PROT: no such setting; did you mean PARLEY_PORT?",
    ]


def test_other_variables_are_left_alone() -> None:
    environ = {"PARLEY_TEST_POSTGRES_URL": "x", "PARLEYPORT": "1", "PORT": "1", "HOME": "/"}
    assert load(environ=environ).problems == []


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path) -> None:
    path = _file(tmp_path, "port = -1\nalow_guests = false\n")
    loaded = load(path, {"host": 5}, {"host": "--host"}, {"PARLEY_MOTD": "hi", "PARLEY_X": ""})
    assert len(loaded.problems) == 4, loaded.problems
    assert loaded.config.motd == "hi"
    with pytest.raises(ValueError, match=r"(?s)port.*alow_guests.*PARLEY_X.*--host"):
        loaded.require_valid()


def test_parley_config_names_the_file_and_config_wins_over_it(tmp_path: Path) -> None:
    chosen = _file(tmp_path, "port = 8100\n")
    other = tmp_path / "other.toml"
    other.write_text("port = 8200\n")
    assert load(environ={"PARLEY_CONFIG": str(chosen)}).config.port == 8100
    assert load(other, environ={"PARLEY_CONFIG": str(chosen)}).config.port == 8200
    (problem,) = load(environ={"PARLEY_CONFIG": str(tmp_path / "gone.toml")}).problems
    assert problem.startswith(f"PARLEY_CONFIG {tmp_path / 'gone.toml'}: no such file")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://parley:s3cret@db:5432/chat", "postgresql://parley:***@db:5432/chat"),
        ("postgresql://:s3cret@db/chat", "postgresql://:***@db/chat"),
        ("postgresql://parley@db/chat", "postgresql://parley@db/chat"),
        ("sqlite:////srv/chat.db", "sqlite:////srv/chat.db"),
    ],
)
def test_a_password_in_a_url_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "s3cret" not in shown("database", url)


def test_values_are_shown_as_toml() -> None:
    assert shown("port", 7976) == "7976"
    assert shown("allow_guests", False) == "false"
    assert shown("hostnames", ("a", "b")) == '["a", "b"]'
    assert shown("motd", 'say "hi"') == '"say \\"hi\\""'
    assert shown("cert_file", None) == "(unset)"
    assert shown("admin_password", "hunter2") == '"***"'


# --- the example file ------------------------------------------------------------------------

_SETTING_LINE = re.compile(r"^# ([a-z0-9_]+) = (.*)$")


def _example_lines() -> dict[str, str]:
    lines = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _SETTING_LINE.match(line)
        if match:
            assert match.group(1) not in lines, f"{match.group(1)} is in the example twice"
            lines[match.group(1)] = f"{match.group(1)} = {match.group(2)}"
    return lines


def test_the_example_file_loads_as_the_defaults() -> None:
    loaded = load(EXAMPLE, environ={})
    assert loaded.problems == []
    assert loaded.config == ServerConfig()


def test_the_example_file_lists_every_setting_with_its_default(tmp_path: Path) -> None:
    lines = _example_lines()
    names = [field.name for field in dataclasses.fields(ServerConfig)]
    assert sorted(lines) == sorted(names)
    # Each line uncommented, through the real loader: the default itself, or for a setting
    # unset by default (and the machine-dependent data dir) a value it accepts.
    examples = {name for name, line in lines.items() if line.endswith("# example")}
    defaults = ServerConfig()
    uncommented = _file(tmp_path, "\n".join(lines.values()) + "\n")
    loaded = load(uncommented, environ={})
    assert loaded.problems == []
    for name in names:
        if name in examples:
            assert getattr(defaults, name) in (None, defaults.data_dir), name
            assert getattr(loaded.config, name) is not None
        else:
            assert getattr(loaded.config, name) == getattr(defaults, name), name
    assert tomllib.loads(uncommented.read_text())  # plain TOML, no extensions
