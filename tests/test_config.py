"""ServerConfig.from_toml: known keys, type coercion, unknown keys, wrong types, overrides."""

from pathlib import Path

import pytest

from parley.config import ServerConfig


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
    config = ServerConfig.from_toml(path, port=9000, data_dir=tmp_path, hostnames=["x.test"])
    assert config.port == 9000
    assert config.host == "0.0.0.0"
    assert config.flood_burst_requests == 9
    assert config.data_dir == tmp_path
    assert config.hostnames == ("x.test",)


def test_unknown_override_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colour"):
        ServerConfig.from_toml(_write(tmp_path, ""), colour="blue")


def test_invalid_toml_is_a_value_error(tmp_path: Path) -> None:
    # tomllib.TOMLDecodeError is a ValueError.
    with pytest.raises(ValueError, match="line 1"):
        ServerConfig.from_toml(_write(tmp_path, "port = = 1\n"))
