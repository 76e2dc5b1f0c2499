"""The README and docs/ stay true: every setting, option, command and admin action the code has
is documented, and the README's two commands do what it says they do.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from parley.cli import build_parser
from parley.client.commands import COMMANDS
from parley.config import ServerConfig

ROOT = Path(__file__).resolve().parents[1]


def _page(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise AssertionError(name)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_every_server_setting_is_in_the_settings_page() -> None:
    page = _page("docs/server-settings.md")
    missing = [f.name for f in dataclasses.fields(ServerConfig) if f"`{f.name}`" not in page]
    assert not missing


def test_every_server_option_is_in_the_settings_page() -> None:
    page = _page("docs/server-settings.md")
    assert [option for option in _options(_subcommand("server")) if option not in page] == []


def test_every_client_option_is_in_the_terminal_client_page() -> None:
    page = _page("docs/terminal-client.md")
    assert [option for option in _options(_subcommand("client")) if option not in page] == []


def test_every_chat_command_is_in_the_commands_page() -> None:
    page = _page("docs/commands.md")
    assert [name for name in COMMANDS if f"/{name}" not in page] == []


def test_every_admin_action_is_in_the_admin_page() -> None:
    page = _page("docs/admin.md")
    admin = _subcommand("admin")
    actions = next(a for a in admin._actions if isinstance(a, argparse._SubParsersAction))
    assert [name for name in actions.choices if f"parley admin {name}" not in page] == []


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]
)
def test_links_to_pages_of_this_repository_lead_somewhere(page: str) -> None:
    path = ROOT / page if page == "README.md" else ROOT / "docs" / page
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
        assert (path.parent / target).exists(), f"{page} links to {target}"


def _dry_run(target: str) -> str:
    """The commands ``make TARGET`` would run on a fresh clone (nothing is run)."""
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_make_run_installs_the_runtime_only() -> None:
    commands = _dry_run("run")
    assert "-r requirements.txt" in commands
    assert "requirements-dev.txt" not in commands and "requirements-gui.txt" not in commands
    assert "parley server" in commands


def test_make_test_installs_the_tools_and_runs_everything() -> None:
    commands = _dry_run("test")
    assert "-r requirements-dev.txt" in commands
    for tool in ("ruff check", "ruff format --check", "mypy", "pytest"):
        assert tool in commands


def test_the_readme_is_a_short_front_page() -> None:
    words = len(_page("README.md").split())
    assert words < 700, words
    assert "docs/screenshots/gui-light.png" in _page("README.md")


def test_service_managers_wait_longer_than_a_node_takes_to_stop() -> None:
    # A node with a bus drains, then shuts down, then closes the database (2 s): compose and
    # systemd must not kill it before, or its users' last messages may go unacknowledged.
    defaults = ServerConfig()
    needed = defaults.shutdown_drain_seconds + defaults.shutdown_grace_seconds + 2.0
    compose = re.search(r"^\s*stop_grace_period: (\d+)s$", _page("compose.yaml"), re.MULTILINE)
    service = re.search(r"^TimeoutStopSec=(\d+)$", _page("deploy/parley.service"), re.MULTILINE)
    assert compose is not None and service is not None
    assert int(compose.group(1)) > needed and int(service.group(1)) > needed
