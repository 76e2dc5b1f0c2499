"""``parley config check``: every effective server setting, its value and where it came from
(secrets masked), then the checks a start would make, without starting anything or changing a
file: the certificate and key load, the data dir is writable (or can be made), the database
file is not an empty one, the log file can be written, a node with a bus has a shared
database and certificate. Exit status 1 on any problem, each one
line on stderr.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from parley.config import ServerConfig
from parley.config_sources import LoadedConfig, shown
from parley.server.preflight import (
    StartupRefused,
    check_database_file,
    exposure,
    require_shared_certificate,
    require_shared_database,
)
from parley.server.workers import problem as workers_problem
from parley.storage.factory import sqlite_path
from parley.tls import CertificateProblem, server_context


def run(loaded: LoadedConfig) -> int:
    """Print the settings of ``loaded`` and the problems found; returns the exit status."""
    config = loaded.config
    rows = [
        (field.name, shown(field.name, getattr(config, field.name)), loaded.sources[field.name])
        for field in dataclasses.fields(config)
    ]
    if loaded.file is not None:
        print(f"# Settings file: {loaded.file}")
    else:
        print("# No settings file (give one with --config or PARLEY_CONFIG)")
    name_width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    for name, value, source in rows:
        print(f"{name:<{name_width}} = {value:<{value_width}}  # {source}")
    problems = [*loaded.problems, *find_problems(config)]
    for problem in problems:
        print(f"parley config: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found.", file=sys.stderr)
        return 1
    print("The settings are fine.")
    return 0


def find_problems(config: ServerConfig) -> list[str]:
    """What would stop a server with ``config`` from starting, one line each."""
    problems = []
    data_dir_problem = _data_dir_problem(config.data_dir)
    if data_dir_problem:
        problems.append(data_dir_problem)
    try:
        _check_certificate(config)
    except CertificateProblem as exc:
        problems.append(str(exc))
    try:
        sqlite_path(config.database, config.data_dir)
        check_database_file(config.database, config.data_dir)
    except (ValueError, StartupRefused) as exc:
        problems.append(str(exc))
    if config.bus is not None:
        # What a node of a cluster refuses to start without, in the same words.
        for require in (require_shared_database, require_shared_certificate):
            try:
                require(config)
            except (ValueError, StartupRefused) as exc:
                problems.append(str(exc))
    workers = workers_problem(config)
    if workers is not None:
        problems.append(workers)
    if config.log_file is not None:
        log_problem = _writable_file_problem(config.log_file)
        if log_problem:
            problems.append(f"log_file {config.log_file}: {log_problem}")
    return problems


def _check_certificate(config: ServerConfig) -> None:
    if (config.cert_file is None) != (config.key_file is None):
        given, missing = (
            ("cert_file", "key_file") if config.key_file is None else ("key_file", "cert_file")
        )
        raise CertificateProblem(
            f"{given} was given without {missing}: give both (the certificate and its private "
            "key), or neither to use a self-signed pair made in the data dir."
        )
    if config.cert_file is not None and config.key_file is not None:
        server_context(config.cert_file, config.key_file)
        return
    cert_file, key_file = config.data_dir / "cert.pem", config.data_dir / "key.pem"
    if cert_file.exists() or key_file.exists():
        # The pair made on an earlier start must still load (the server never replaces it).
        server_context(cert_file, key_file)


def _data_dir_problem(data_dir: Path) -> str | None:
    if data_dir.exists():
        if not data_dir.is_dir():
            return f"data_dir {data_dir} is a file, not a directory: give a directory."
        if not os.access(data_dir, os.W_OK | os.X_OK):
            return f"data_dir {data_dir}: this user may not write in it; check its owner."
        try:
            return exposure(data_dir)  # the server refuses to start on an exposed data dir
        except OSError as exc:
            return f"data_dir {data_dir}: cannot be read ({exc.strerror}); check its owner."
    parent = _nearest_existing(data_dir)
    if not parent.is_dir():
        return (
            f"data_dir {data_dir} does not exist and cannot be made: {parent} is a file. "
            "Give another directory."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"data_dir {data_dir} does not exist and cannot be made: this user may not write "
            f"in {parent}. Make it, or give another."
        )
    return None


def _writable_file_problem(path: Path) -> str | None:
    if path.exists():
        if path.is_dir():
            return "is a directory; give a file's path."
        return None if os.access(path, os.W_OK) else "this user may not write it."
    parent = path.parent
    if not parent.is_dir():
        return f"its directory {parent} does not exist."
    return None if os.access(parent, os.W_OK | os.X_OK) else f"this user may not write in {parent}."


def _nearest_existing(path: Path) -> Path:
    for candidate in path.absolute().parents:
        if candidate.exists():
            return candidate
    return Path("/")
