"""The servers under test: a fresh process per run, started here and stopped by its PID.

Both listen on 127.0.0.1 only, over TLS with an ECDSA P-256 certificate, and run as shipped
except where ngIRCd must be told otherwise for the comparison to mean anything:

- its per-address connection limit and its flood penalty are lifted (``MaxConnectionsIP = 0``,
  ``MaxPenaltyTime = 0``): every client comes from this one machine, and the speakers already
  stay under Parley's shipped flood limit, so both servers see the same rate;
- no DNS or ident look-ups, no PAM, a PING only after 10 idle minutes.

Each server writes its log to a file in its own temporary directory; the directory is removed
after the run unless ``BENCH_KEEP`` is set in the environment.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from bench import certs, proc

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0
NGIRCD_FALLBACK = "/usr/sbin/ngircd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ngircd_binary() -> str | None:
    found = shutil.which("ngircd")
    if found is not None:
        return found
    return NGIRCD_FALLBACK if os.access(NGIRCD_FALLBACK, os.X_OK) else None


def _accepts_tls(port: int) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2.0) as raw,
            context.wrap_socket(raw),
        ):
            return True
    except OSError:
        return False


def _known_settings(root: Path, settings: str) -> str:
    """The lines of ``settings`` whose setting the checkout at ``root`` has: an older one,
    measured for comparison, would refuse to start on a setting made after it.
    """
    source = (root / "src" / "parley" / "config.py").read_text()
    return "".join(
        f"{line}\n"
        for line in settings.splitlines()
        if line.strip() and f"    {line.split('=', 1)[0].strip()}:" in source
    )


class Server(abc.ABC):
    """One server process. ``protocol`` names the client that speaks to it."""

    name: ClassVar[str]
    protocol: ClassVar[str]
    # A line the server logs when it cuts off a client that does not read fast enough.
    slow_reader_log_line: ClassVar[bytes]

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    @abc.abstractmethod
    def command(self) -> tuple[list[str], dict[str, str] | None]:
        """The command line and environment (None: inherit) that start the server."""

    def start(self) -> None:
        command, env = self.command()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.process.returncode}: {self.log_tail()}"
                )
            if _accepts_tls(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not accept TLS on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def cpu_seconds(self) -> float:
        return proc.cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc.rss_bytes(self.pid)

    def slow_reader_cuts(self) -> int:
        """How often the log says a client was cut off for not reading (best effort)."""
        try:
            return self.log_path.read_bytes().count(self.slow_reader_log_line)
        except OSError:
            return 0

    def log_tail(self, size: int = 600) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


POSTGRES_ADMIN_URL = os.environ.get(
    "PARLEY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres(statement: str) -> None:
    """Run one statement on the PostgreSQL server the bench uses (CREATE/DROP DATABASE)."""
    import asyncio

    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


class ParleyServer(Server):
    """``python -m parley server`` from the chosen checkout, its settings all as shipped.

    ``database="postgresql"`` runs it on a PostgreSQL database made for this run and dropped
    after it, on the server at PARLEY_BENCH_POSTGRES_URL (default the local test server).
    """

    name = "Parley"
    protocol = "parley"
    slow_reader_log_line = b"not reading"

    def __init__(
        self,
        root: Path,
        settings: str = "",
        database: str | None = None,
        prefill: Callable[[str | None, Path], None] | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.settings = settings
        self.database = database
        # Run before the server starts, with its --database (None: SQLite) and data dir.
        self.prefill = prefill

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        # The checkout's src/ comes before the installed package, so another commit can be
        # measured with this one's bench.
        env = {**os.environ, "PYTHONPATH": str(self.root / "src")}
        command = [sys.executable, "-m", "parley", "server", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--data-dir", str(self.workdir / "data")]
        # Files on any free port: the default (the chat port + 1) may be taken on a busy box.
        config = self.workdir / "parley.toml"
        config.write_text(_known_settings(self.root, self.settings) + "files_port = 0\n")
        command += ["--config", str(config)]
        database = self.database
        if database == "postgresql":
            self.database_name = f"parley_bench_{self.workdir.name.replace('-', '_').lower()}"
            _postgres(f'CREATE DATABASE "{self.database_name}"')
            database = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{self.database_name}"
        if database is not None:
            command += ["--database", database]
        if self.prefill is not None:
            self.prefill(database, self.workdir / "data")
        return command, env

    def stop(self) -> None:
        super().stop()
        if getattr(self, "database_name", None):
            _postgres(f'DROP DATABASE IF EXISTS "{self.database_name}"')


class NgircdServer(Server):
    """ngIRCd in the foreground with a configuration written for this run."""

    name = "ngIRCd"
    protocol = "irc"
    slow_reader_log_line = b"Write buffer space exhausted"

    def __init__(self, binary: str, cache_dir: Path) -> None:
        super().__init__()
        self.binary = binary
        self.cache_dir = cache_dir

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
        certs.write_self_signed(cert, key)
        dh_file = self.workdir / certs.DH_FILE_NAME
        shutil.copyfile(certs.dh_parameters(self.cache_dir), dh_file)
        # Started as root, ngIRCd switches to "nobody" after reading its files; the files stay
        # readable to it anyway so that nothing depends on that order. The key is throwaway.
        self.workdir.chmod(0o755)
        for each in (cert, key, dh_file):
            each.chmod(0o644)
        config = self.workdir / "ngircd.conf"
        config.write_text(
            f"""\
[Global]
Name = bench.invalid
Info = Parley benchmark peer
AdminInfo1 = benchmark
AdminInfo2 = loopback
AdminEMail = bench@bench.invalid
Listen = 127.0.0.1
# A plain-text port is always opened; a free one keeps it out of the way.
Ports = {free_port()}
MotdPhrase = bench

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600

[Options]
DNS = no
Ident = no
PAM = no

[SSL]
CertFile = {cert}
KeyFile = {key}
DHFile = {dh_file}
Ports = {self.port}
"""
        )
        return [self.binary, "--nodaemon", "--config", str(config)], None
