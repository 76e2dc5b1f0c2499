"""``python client.py`` and ``python server.py`` run with a ``python`` that lacks Parley's
dependencies (the system's, say): the checkout's ``.venv`` is used when there is one, and
otherwise the user is told what to install, never shown a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checkout(tmp_path: Path, with_venv: bool) -> Path:
    """The top-level scripts and the sources, with or without a ``.venv`` that has the
    dependencies (the one running these tests).
    """
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for script in ("client.py", "server.py"):
        shutil.copy(ROOT / script, checkout / script)
    (checkout / "src").symlink_to(ROOT / "src")
    if with_venv:
        (checkout / ".venv").symlink_to(Path(sys.prefix))
    return checkout


def _bare_python(tmp_path: Path) -> Path:
    """An interpreter with none of Parley's dependencies."""
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    return bare / "bin" / "python"


def _run(python: Path, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(script), *args],
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_checkouts_venv_is_used_when_python_lacks_the_dependencies(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, with_venv=True)
    bare = _bare_python(tmp_path)
    for script, usage in (("client.py", "--nick"), ("server.py", "--data-dir")):
        done = _run(bare, checkout / script, "--help")
        assert done.returncode == 0, done.stderr
        assert usage in done.stdout


def test_without_a_venv_the_user_is_told_what_to_install(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, with_venv=False)
    done = _run(_bare_python(tmp_path), checkout / "client.py", "--plain")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "client.py: Parley's dependencies are not installed" in done.stderr
    assert "Run `make run`" in done.stderr and "requirements.txt" in done.stderr
