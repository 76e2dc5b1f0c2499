"""``python server.py``, ``python client.py`` and ``python gui.py`` from a checkout: the
tutorial's commands, run with whichever ``python`` is first on the user's PATH.

That is often the system's, which lacks Parley's dependencies even after ``make run`` installed
them into the checkout's ``.venv``. Then the script runs again under the venv's interpreter;
without a venv it says what to install instead of a traceback. Standard library only: this runs
before any dependency is known to be importable.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

# The import names of requirements.txt: what Parley needs beyond the standard library.
_PROBE = (
    "aiohttp",
    "argon2",
    "asyncpg",
    "cryptography",
    "msgspec",
    "platformdirs",
    "prometheus_client",
    "prompt_toolkit",
    "icu",
    "wcwidth",
)


def run(script: Path, entry: str) -> int:
    """Run ``parley.cli.<entry>`` for ``script`` (a checkout's top-level script)."""
    missing = _missing()
    if missing is not None:
        venv_python = script.parent / ".venv" / "bin" / "python"
        in_that_venv = Path(sys.prefix).resolve() == venv_python.parent.parent.resolve()
        if venv_python.is_file() and not in_that_venv:
            # The same script and arguments, under the interpreter that has the dependencies.
            os.execv(venv_python, [str(venv_python), str(script), *sys.argv[1:]])  # noqa: S606
        print(
            f"{script.name}: Parley's dependencies are not installed for {sys.executable} "
            f"(no module named {missing!r}). Run `make run` in {script.parent} (it makes .venv "
            f"there, after which `python {script.name}` uses it), or `pip install -r "
            "requirements.txt` in a virtual environment.",
            file=sys.stderr,
        )
        return 2
    cli = importlib.import_module("parley.cli")
    status: int = getattr(cli, entry)()
    return status


def _missing() -> str | None:
    # Found, not imported: the real imports come with parley.cli.
    return next((name for name in _PROBE if importlib.util.find_spec(name) is None), None)
