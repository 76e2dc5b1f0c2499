"""The ``parley`` command: ``parley server``, ``parley client``, ``parley admin`` and
``parley config check``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parley import __version__, config_sources
from parley.config import LOG_FORMATS, LOG_LEVELS, MAX_WORKERS, ServerConfig

# The server's options, by the setting each one sets (for error messages).
SERVER_FLAGS = {
    "host": "--host",
    "port": "--port",
    "data_dir": "--data-dir",
    "cert_file": "--cert",
    "key_file": "--key",
    "hostnames": "--hostname",
    "database": "--database",
    "bus": "--bus",
    "workers": "--workers",
    "log_level": "--log-level",
    "log_format": "--log-format",
    "log_file": "--log-file",
    "init_admin": "--init-admin",
}


def port_number(text: str) -> int:
    """A TCP port from the command line (argparse reports the ValueError's message)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def whole_number(text: str) -> int:
    """A count from the command line; its range is checked with the setting's."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number: give how many server processes to run "
            f"(1 to {MAX_WORKERS})"
        ) from None


def _server_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML file of settings (default: $PARLEY_CONFIG; see docs/server-settings.md)",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 7976; 0: any)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        dest="data_dir",
        help="where the certificate and data live (default: the user data dir)",
    )
    parser.add_argument("--cert", type=Path, dest="cert_file", help="PEM certificate to use")
    parser.add_argument("--key", type=Path, dest="key_file", help="PEM private key to use")
    parser.add_argument(
        "--database",
        help="postgresql://USER@HOST/DB or sqlite:///PATH (default: SQLite in the data dir)",
    )
    parser.add_argument(
        "--bus",
        help="redis://HOST:PORT/DB: run as one node of a cluster (needs PostgreSQL --database)",
    )
    parser.add_argument(
        "--workers",
        type=whole_number,
        metavar="N",
        help="server processes sharing the ports, to use N cores (default 1; needs --bus)",
    )
    parser.add_argument(
        "--hostname",
        action="append",
        dest="hostnames",
        default=None,
        help="extra name for the generated certificate (repeatable)",
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        choices=LOG_LEVELS,
        help="the least severe log lines shown (default info)",
    )
    parser.add_argument(
        "--log-format",
        dest="log_format",
        choices=LOG_FORMATS,
        help="text lines (default) or one JSON object per line",
    )
    parser.add_argument(
        "--log-file", type=Path, dest="log_file", help="append the log to FILE (default stdout)"
    )
    parser.add_argument(
        "--init-admin",
        dest="init_admin",
        action="store_const",
        const=True,
        help="create the account 'admin' (password shown once) if no administrator exists",
    )


def _client_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="server port (default 7976)")
    parser.add_argument("--nick", help="nickname to use instead of being asked")
    parser.add_argument(
        "--config",
        type=Path,
        help="settings file (default: client.toml in the user's config dir)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="on a terminal, the line-by-line client instead of the full-screen one",
    )
    parser.add_argument(
        "--cafile", type=Path, help="verify the server against this CA bundle instead of pinning"
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server at all (unsafe; for testing only)",
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument(
        "--trust-new",
        dest="trust_new",
        action="store_const",
        const=True,
        help="trust a server seen for the first time without asking (scripts)",
    )
    trust.add_argument(
        "--no-trust-new",
        dest="trust_new",
        action="store_const",
        const=False,
        help="refuse a server seen for the first time (pin it beforehand)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Secure self-hosted chat.")
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _server_parser(commands.add_parser("server", help="run a chat server"))
    _client_parser(commands.add_parser("client", help="chat from this terminal"))
    from parley.admin import add_parser as admin_parser

    admin_parser(commands.add_parser("admin", help="manage accounts, roles and the audit log"))
    config = commands.add_parser("config", help="the server's settings")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="check")
    _server_parser(
        config_commands.add_parser(
            "check",
            help="show every effective setting and where it came from, and check them",
            description="Takes the options of 'parley server'; exits 1 on any problem.",
        )
    )
    gui = commands.add_parser("gui", help="the desktop app (needs requirements-gui.txt)")
    gui.add_argument(
        "--theme",
        choices=["system", "light", "dark"],
        default="system",
        help="colours: the system's (default), or light or dark",
    )
    gui.add_argument("--host", help="the server to offer in the connect dialog")
    gui.add_argument("--port", type=int, help="its port (default: the last one used, or 7976)")
    gui.add_argument("--nick", help="the nickname to offer in the connect dialog")
    gui.add_argument(
        "--cafile", type=Path, help="verify the server against this CA bundle instead of pinning"
    )
    return parser


def load_server_config(args: argparse.Namespace) -> config_sources.LoadedConfig:
    """Defaults, then the settings file (--config or $PARLEY_CONFIG), then PARLEY_*
    variables, then the options given on the command line; every problem is collected.
    """
    given: dict[str, Any] = {
        name: getattr(args, name) for name in SERVER_FLAGS if getattr(args, name) is not None
    }
    return config_sources.load(args.config, given, SERVER_FLAGS)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The settings :func:`load_server_config` finds. Raises ConfigError listing every
    problem.
    """
    return load_server_config(args).require_valid()


def run_server(args: argparse.Namespace) -> int:
    from parley.server.app import run

    try:
        config = server_config(args)
    except ValueError as exc:
        for line in str(exc).splitlines():
            print(f"parley server: {line}", file=sys.stderr)
        return 2
    # SIGHUP reads the file and the environment again; the command line stays as given.
    if config.workers > 1:
        from parley.server.workers import supervise

        return supervise(config, lambda: server_config(args))
    return run(config, lambda: server_config(args))


def run_client(args: argparse.Namespace) -> int:
    from parley.client import settings as client_settings
    from parley.client.console import ClientOptions
    from parley.client.console import run_client as run

    try:
        settings = client_settings.load(args.config)
    except client_settings.SettingsError as exc:
        print(f"parley client: {exc}", file=sys.stderr)
        return 2
    # The command line wins over the settings file.
    options = ClientOptions(
        host=args.host or settings.host,
        port=args.port or settings.port,
        nick=args.nick or settings.nick or None,
        cafile=args.cafile,
        insecure=args.insecure,
        plain=args.plain,
        trust_new=args.trust_new,
        settings=settings,
    )
    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(options))
    result: int = uvloop.run(run(options))
    return result


def run_gui(args: argparse.Namespace) -> int:
    from parley.client import settings as client_settings

    try:
        from parley.gui.app import run
    except ImportError as exc:
        print(
            f"parley gui: the desktop app needs Qt ({exc}). Install it with "
            "`pip install -r requirements-gui.txt`.",
            file=sys.stderr,
        )
        return 2
    if args.port is not None and not 1 <= args.port <= 65535:
        print(f"parley gui: --port {args.port} is not a port: give 1 to 65535.", file=sys.stderr)
        return 2
    try:
        settings = client_settings.load()
    except client_settings.SettingsError as exc:
        print(f"parley gui: {exc}", file=sys.stderr)
        return 2
    return run(
        args.theme, settings, host=args.host, port=args.port, nick=args.nick, cafile=args.cafile
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # Whoever read the output stopped (``parley config check | head``): not a fault to
        # report. Python would meet the closed pipe again flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "server":
        return run_server(args)
    if args.command == "admin":
        from parley.admin import run

        return run(args)
    if args.command == "gui":
        return run_gui(args)
    if args.command == "config":
        from parley.config_check import run as check

        return check(load_server_config(args))
    return run_client(args)


def server_main() -> int:
    """``python server.py``: the server, with the same options as ``parley server``."""
    return main(["server", *sys.argv[1:]])


def gui_main() -> int:
    """``python gui.py``: the desktop app, with the same options as ``parley gui``."""
    return main(["gui", *sys.argv[1:]])


def client_main() -> int:
    """``python client.py``: the client, with the same options as ``parley client``."""
    try:
        return main(["client", *sys.argv[1:]])
    except KeyboardInterrupt:
        return 130
