"""``parley admin`` reads the server's PARLEY_* variables and PARLEY_CONFIG, so in a container
it works on the database the server uses without repeating --data-dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PASSWORD = "correct horse battery"


def admin(*args: str, stdin: str = "", **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley", "admin", *args],
        input=stdin,
        env=os.environ | variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_data_dir_from_the_environment_and_from_parley_config(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    created = admin("create", "Dana", stdin=PASSWORD + "\n", PARLEY_DATA_DIR=str(data))
    assert created.returncode == 0, created.stderr
    assert (data / "parley.sqlite3").exists()
    settings = tmp_path / "server.toml"
    settings.write_text(f'data_dir = "{data}"\n')
    assert "Dana" in admin("users", PARLEY_CONFIG=str(settings)).stdout
    # The command line wins over the environment.
    other = tmp_path / "other"
    listing = admin("users", "--data-dir", str(other), PARLEY_DATA_DIR=str(data))
    assert listing.returncode == 1
    assert f"There is no Parley database at {other}" in listing.stderr


def test_a_misspelt_variable_stops_it(tmp_path: Path) -> None:
    result = admin("users", PARLEY_DATA_DIR=str(tmp_path), PARLEY_DATABSE="sqlite:///x.db")
    assert result.returncode == 1
    assert "PARLEY_DATABSE: no such setting; did you mean PARLEY_DATABASE?" in result.stderr
