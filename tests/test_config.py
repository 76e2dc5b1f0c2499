"""ServerConfig.from_toml: known keys, type coercion, unknown keys, wrong types, overrides."""

import dataclasses
import math
import re
from pathlib import Path

import pytest

from parley.config import BOUNDS, ConfigError, ServerConfig


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parley.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_known_keys_are_read_and_coerced(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
host = "0.0.0.0"
port = 8000
data_dir = "/srv/parley"
cert_file = "/etc/parley/cert.pem"
hostnames = ["chat.example.com", "10.0.0.1"]
hello_timeout_seconds = 3          # an integer for a float setting
flood_rate_per_second = 2.5
flood_burst_requests = 7
send_buffer_limit_bytes = 65536
tcp_nodelay = true
""",
    )
    config = ServerConfig.from_toml(path)
    assert config.host == "0.0.0.0"
    assert config.port == 8000
    assert type(config.port) is int
    assert config.data_dir == Path("/srv/parley")
    assert config.cert_file == Path("/etc/parley/cert.pem")
    assert config.key_file is None
    assert config.hostnames == ("chat.example.com", "10.0.0.1")
    assert config.hello_timeout_seconds == 3.0
    assert type(config.hello_timeout_seconds) is float
    assert config.flood_rate_per_second == 2.5
    assert config.flood_burst_requests == 7
    assert config.send_buffer_limit_bytes == 65536
    assert config.tcp_nodelay is True


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert ServerConfig.from_toml(_write(tmp_path, "")) == ServerConfig()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, 'host = "::1"\nflood_brust_requests = 5\n')
    with pytest.raises(ValueError, match="flood_brust_requests"):
        ServerConfig.from_toml(path)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('port = "http"', "port"),
        ("port = true", "port"),
        ("port = [8000]", "port"),
        ("port = 8000.5", "port"),
        ('flood_rate_per_second = "fast"', "flood_rate_per_second"),
        ("flood_rate_per_second = true", "flood_rate_per_second"),
        ("cert_file = 5", "cert_file"),
        ('hostnames = "chat.example.com"', "hostnames"),
        ("hostnames = [1, 2]", "hostnames"),
        ("host = 127", "host"),
        ('host = ["a", "b"]', "host"),
        ('tcp_nodelay = "yes"', "tcp_nodelay"),
        ("tcp_nodelay = 1", "tcp_nodelay"),
    ],
)
def test_wrong_type_is_a_value_error(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ServerConfig.from_toml(_write(tmp_path, line + "\n"))


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'host = "0.0.0.0"\nport = 8000\nflood_burst_requests = 9\n')
    config = ServerConfig.from_toml(
        path, {"port": 9000, "data_dir": tmp_path, "hostnames": ["x.test"]}
    )
    assert config.port == 9000
    assert config.host == "0.0.0.0"
    assert config.flood_burst_requests == 9
    assert config.data_dir == tmp_path
    assert config.hostnames == ("x.test",)


def test_unknown_override_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colour"):
        ServerConfig.from_toml(_write(tmp_path, ""), {"colour": "blue"})


def test_invalid_toml_is_a_value_error(tmp_path: Path) -> None:
    # tomllib.TOMLDecodeError is a ValueError.
    with pytest.raises(ValueError, match="line 1"):
        ServerConfig.from_toml(_write(tmp_path, "port = = 1\n"))


def test_every_numeric_setting_has_bounds() -> None:
    numeric = {
        field.name
        for field in dataclasses.fields(ServerConfig)
        if str(field.type).removesuffix(" | None") in ("int", "float")
    }
    assert numeric == set(BOUNDS)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("port", 65536, "from 0 to 65535"),
        ("port", -1, "from 0 to 65535"),
        ("max_connections", 0, "at least 1"),
        ("flood_rate_per_second", 0.0, "more than 0"),
        ("flood_rate_per_second", math.inf, "more than 0"),
        ("history_on_join", 201, "from 0 to 200"),
    ],
)
def test_a_value_out_of_range_names_the_source_and_the_range(
    name: str, value: float, allowed: str
) -> None:
    with pytest.raises(ConfigError, match=f"^--{name}: .* is out of range; it must be {allowed}"):
        ServerConfig.from_mapping({name: value}, {name: f"--{name}"})


def test_room_creation_is_one_of_three() -> None:
    with pytest.raises(ConfigError, match="'moderator' is not one of 'everyone', 'accounts'"):
        ServerConfig.from_mapping({"room_creation": "moderator"})
    assert ServerConfig.from_mapping({"room_creation": "moderators"}).room_creation == "moderators"


def test_a_typo_gets_a_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, "alow_guests = false\n")
    with pytest.raises(ConfigError, match=r"did you mean 'allow_guests'\?"):
        ServerConfig.from_toml(path)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("127.0.0.1:9976", "127.0.0.1:9976"),
        ("[::1]:9976", "[::1]:9976"),
        ("localhost:0", "localhost:0"),
        ("", None),
        ("  ", None),
    ],
)
def test_metrics_listen_takes_host_and_port_or_nothing(value: str, kept: str | None) -> None:
    assert ServerConfig.from_mapping({"metrics_listen": value}).metrics_listen == kept
    assert ServerConfig().metrics_listen is None  # off unless asked for


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("9976", "must be HOST:PORT"),
        ("127.0.0.1", "must be HOST:PORT"),
        (":9976", "must be HOST:PORT"),
        ("127.0.0.1:http", "must be HOST:PORT"),
        ("127.0.0.1:-1", "must be HOST:PORT"),
        ("127.0.0.1:70000", "has port 70000; it must be from 0 to 65535"),
        ("::1:9976", "must put an IPv6 address in brackets"),
        ("[localhost]:9976", "has brackets around something that is not an IPv6 address"),
        ("[]:9976", "has brackets around something that is not an IPv6 address"),
        ("local host:9976", "has a space"),
    ],
)
def test_a_bad_metrics_listen_names_the_setting_and_the_form(
    tmp_path: Path, value: str, why: str
) -> None:
    path = _write(tmp_path, f'metrics_listen = "{value}"\n')
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:metrics_listen: '.*' {why}"):
        ServerConfig.from_toml(path)


def test_metrics_listen_must_be_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="metrics_listen"):
        ServerConfig.from_toml(_write(tmp_path, "metrics_listen = 9976\n"))
