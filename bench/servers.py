"""The servers under test, each started fresh for one run and stopped by PID afterwards.

Both listen on 127.0.0.1 only, use TLS with an ECDSA P-256 certificate made the same way, and
run with their limits as shipped except where noted: ngIRCd's per-address connection limit and
flood penalty are lifted, because the whole load comes from one machine and Parley's own flood
control stays on (the workloads stay under it).
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 30.0
NGIRCD = "ngircd"


def raise_fd_limit() -> None:
    """Every connection is a file descriptor; children (the servers) inherit the limit."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                pids.extend(_process_tree(int(child)))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants, from /proc."""
    total = 0
    for each in _process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    for each in _process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Server(abc.ABC):
    """A server process under test. ``kind`` is the protocol its clients speak."""

    kind = ""
    name = ""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @abc.abstractmethod
    def start(self) -> None:
        """Start the process and return once its port accepts connections."""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ParleyServer(Server):
    kind = "parley"
    name = "Parley"

    def __init__(self, parley_root: Path = ROOT) -> None:
        super().__init__()
        self.parley_root = parley_root

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(self.parley_root / "src")}
        command = [sys.executable, "-m", "parley", "server", "--port", str(self.port)]
        command += ["--data-dir", str(self.workdir)]
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process)


class NgircdServer(Server):
    kind = "irc"
    name = "ngIRCd"

    def start(self) -> None:
        sys.path.insert(0, str(ROOT / "src"))
        from parley.tls import generate_self_signed

        cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
        generate_self_signed(cert, key, ["localhost", "127.0.0.1"])
        # ngIRCd drops root for "nobody" after start-up; it reads its files before that, but
        # the directory must stay reachable.
        self.workdir.chmod(0o755)
        key.chmod(0o644)
        config = self.workdir / "ngircd.conf"
        config.write_text(
            "\n".join(
                [
                    "[Global]",
                    "Name = bench.invalid",
                    "Info = Parley benchmark peer",
                    "Listen = 127.0.0.1",
                    f"Ports = {free_port()}",
                    "MotdPhrase = bench",
                    "[Limits]",
                    "MaxConnections = 0",
                    "MaxConnectionsIP = 0",
                    "MaxJoins = 0",
                    "MaxPenaltyTime = 0",
                    "PingTimeout = 600",
                    "PongTimeout = 600",
                    "[Options]",
                    "DNS = no",
                    "Ident = no",
                    "PAM = no",
                    "[SSL]",
                    f"CertFile = {cert}",
                    f"KeyFile = {key}",
                    f"Ports = {self.port}",
                    "",
                ]
            )
        )
        binary = shutil.which(NGIRCD) or "/usr/sbin/ngircd"
        self.log = (self.workdir / "ngircd.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "--nodaemon", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.process)


def ngircd_available() -> bool:
    return shutil.which(NGIRCD) is not None or Path("/usr/sbin/ngircd").exists()
