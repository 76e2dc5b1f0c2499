"""``parley config check`` run as an operator runs it: every setting, its value and its source,
secrets masked, and exit status 1 with one line per problem.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from processes import ROOT, environment

from parley.tls import generate_self_signed


def check(home: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = environment(home) | variables
    return subprocess.run(
        [sys.executable, "-m", "parley", "config", "check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def setting_lines(output: str) -> dict[str, tuple[str, str]]:
    """``name = value  # source`` lines, by name."""
    lines = {}
    for line in output.splitlines():
        if " = " in line and "  # " in line:
            name, rest = line.split(" = ", 1)
            value, source = rest.rsplit("  # ", 1)
            lines[name.strip()] = (value.strip(), source)
    return lines


def test_every_setting_with_its_value_and_source(tmp_path: Path) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text('motd = "Hello"\nport = 8000\n')
    result = check(
        tmp_path,
        "--config",
        str(settings),
        "--port",
        "8100",
        PARLEY_DATABASE="postgresql://parley:s3cret-pw@127.0.0.1/parley",
        PARLEY_ALLOW_GUESTS="false",
    )
    assert result.returncode == 0, result.stderr
    lines = setting_lines(result.stdout)
    from parley.config import ServerConfig

    assert len(lines) == len(ServerConfig.__dataclass_fields__)
    assert lines["motd"] == ('"Hello"', f"{settings}:motd")
    assert lines["port"] == ("8100", "--port")
    assert lines["allow_guests"] == ("false", "PARLEY_ALLOW_GUESTS")
    assert lines["database"] == ('"postgresql://parley:***@127.0.0.1/parley"', "PARLEY_DATABASE")
    assert lines["max_connections"] == ("50000", "default")
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "The settings are fine." in result.stdout
    assert result.stdout.startswith(f"# Settings file: {settings}\n")
    # Nothing was made: a check does not start anything.
    assert not (tmp_path / "data" / "parley").exists()


def test_parley_config_names_the_file(tmp_path: Path) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text('room_creation = "accounts"\n')
    result = check(tmp_path, PARLEY_CONFIG=str(settings))
    assert result.returncode == 0, result.stderr
    assert setting_lines(result.stdout)["room_creation"] == (
        '"accounts"',
        f"{settings}:room_creation",
    )


def test_the_sqlite_durability_is_shown_and_a_bad_one_refused(tmp_path: Path) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text('sqlite_synchronous = "normal"\n')
    result = check(tmp_path, "--config", str(settings))
    assert result.returncode == 0, result.stderr
    assert setting_lines(result.stdout)["sqlite_synchronous"] == (
        '"normal"',
        f"{settings}:sqlite_synchronous",
    )
    settings.write_text('sqlite_synchronous = "off"\n')
    result = check(tmp_path, "--config", str(settings))
    assert result.returncode == 1
    assert (
        f"parley config: {settings}:sqlite_synchronous: 'off' is not one of 'full', 'normal'."
        in result.stderr
    )
    default = check(tmp_path)
    assert setting_lines(default.stdout)["sqlite_synchronous"] == ('"full"', "default")


def test_every_problem_is_a_line_and_the_status_is_1(tmp_path: Path) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text("port = 70000\nalow_guests = false\n")
    missing_cert = tmp_path / "nope.pem"
    result = check(
        tmp_path,
        "--config",
        str(settings),
        "--cert",
        str(missing_cert),
        "--key",
        str(missing_cert),
        PARLEY_FLOOD_RATE_PER_SECOND="fast",
        PARLEY_MOTDD="hi",
    )
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("parley config:")]
    expected = [
        f"{settings}:port: 70000 is out of range; it must be from 0 to 65535",
        f"{settings}:alow_guests: unknown setting 'alow_guests'; did you mean 'allow_guests'?",
        "PARLEY_FLOOD_RATE_PER_SECOND: 'fast' is not a number",
        "PARLEY_MOTDD: no such setting; did you mean PARLEY_MOTD?",
        f"{missing_cert}: no such file",
    ]
    assert len(problems) == len(expected), result.stderr
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(f"parley config: {start}"), (problem, start)
    assert "Traceback" not in result.stderr
    # The settings are still shown, for what could be read.
    assert setting_lines(result.stdout)["port"] == ("7976", "default")


def test_an_unreadable_key_and_a_data_dir_that_cannot_be_made(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(cert, key, ["localhost"])
    key.unlink()
    key.mkdir()  # unreadable as a file, whoever runs the test (root reads any mode)
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    result = check(
        tmp_path, "--cert", str(cert), "--key", str(key), "--data-dir", str(in_the_way / "data")
    )
    assert result.returncode == 1
    assert f"{key}: the private key cannot be read (Is a directory)" in result.stderr
    assert f"data_dir {in_the_way / 'data'} does not exist and cannot be made" in result.stderr
    assert "2 problem(s) found." in result.stderr


def test_a_data_dir_other_users_can_read_is_refused_as_the_server_would(tmp_path: Path) -> None:
    data_dir = tmp_path / "data-dir"
    data_dir.mkdir(mode=0o700)
    assert check(tmp_path, "--data-dir", str(data_dir)).returncode == 0
    data_dir.chmod(0o755)
    result = check(tmp_path, "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert f"{data_dir} can be read by other users (mode 0755)" in result.stderr
    assert f"Run: chmod -R go-rwx {data_dir}" in result.stderr


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    result = check(tmp_path, "--data-dir", str(in_the_way))
    assert result.returncode == 1
    assert f"data_dir {in_the_way} is a file, not a directory" in result.stderr


def test_a_good_certificate_passes_and_one_without_its_key_does_not(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(cert, key, ["localhost"])
    assert check(tmp_path, "--cert", str(cert), "--key", str(key)).returncode == 0
    alone = check(tmp_path, "--cert", str(cert))
    assert alone.returncode == 1
    assert "cert_file was given without key_file" in alone.stderr


def test_a_log_file_in_a_missing_directory(tmp_path: Path) -> None:
    result = check(tmp_path, PARLEY_LOG_FILE=str(tmp_path / "no" / "server.log"))
    assert result.returncode == 1
    assert f"log_file {tmp_path / 'no' / 'server.log'}: its directory" in result.stderr


def test_a_wrong_type_in_the_file_is_named_in_plain_words(tmp_path: Path) -> None:
    settings = tmp_path / "server.toml"
    settings.write_text(
        'history_on_join = "lots"\nallow_guests = "no"\nmotd = 5\nport = "7000"\n'
        'flood_rate_per_second = "2.5"\n'
    )
    result = check(tmp_path, "--config", str(settings))
    assert result.returncode == 1
    assert f"{settings}:port: '7000' is not a whole number." in result.stderr
    assert f"{settings}:flood_rate_per_second: '2.5' is not a number." in result.stderr
    assert f"{settings}:history_on_join: 'lots' is not a whole number." in result.stderr
    assert f"{settings}:allow_guests: 'no' is not true or false." in result.stderr
    assert f"{settings}:motd: 5 is not text (in quotes in a TOML file)." in result.stderr


def test_a_count_named_after_tokens_is_shown_not_masked(tmp_path: Path) -> None:
    result = check(tmp_path, PARLEY_MAX_TOKENS_PER_PRINCIPAL="7")
    assert result.returncode == 0, result.stderr
    lines = setting_lines(result.stdout)
    assert lines["max_tokens_per_principal"] == ("7", "PARLEY_MAX_TOKENS_PER_PRINCIPAL")


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    # As `parley config check | head -3`: the pipe closes while the table is written.
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "config", "check", "--data-dir", str(tmp_path / "d")],
        cwd=ROOT,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read().decode()
    process.stderr.close()
    process.wait(60)
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
