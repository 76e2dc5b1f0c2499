"""deploy/parley.service under a real systemd (PID 1 of a container): it starts sandboxed,
comes back after SIGKILL, stops cleanly on SIGTERM, and no acknowledged message is lost.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chat import history_of, say
from podman_lab import ROOT, Podman, free_port

UNIT = "/etc/systemd/system/parley.service"


@dataclass
class Machine:
    """A container booted with systemd, the unit enabled in it, its chat port published."""

    podman: Podman
    name: str
    chat_port: int

    def __call__(self, *command: str, check: bool = True) -> str:
        return self.podman("exec", self.name, *command, check=check).stdout.strip()

    def show(self, *properties: str, check: bool = True) -> dict[str, str]:
        """The unit's properties (none while systemd is still booting, unless ``check``)."""
        lines = self(
            "systemctl", "show", "parley", *(f"--property={p}" for p in properties), check=check
        )
        return dict(line.split("=", 1) for line in lines.splitlines() if "=" in line)

    def wait_until(self, what: str, condition: dict[str, str], timeout: float = 60) -> str:
        """Wait until the unit's properties are as in ``condition``; returns its MainPID."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.show("MainPID", *condition, check=False)
            if all(state.get(key) == value for key, value in condition.items()):
                return state["MainPID"]
            if time.monotonic() > deadline:
                journal = self("journalctl", "-u", "parley", "--no-pager", check=False)
                raise AssertionError(
                    f"parley.service not {what} within {timeout} s: {state}\n{journal[-3000:]}"
                )
            time.sleep(0.5)

    def wait_serving(self, starts: int) -> str:
        """Wait until the server of the ``starts``-th start listens; returns its PID."""
        pid = self.wait_until("active", {"ActiveState": "active", "SubState": "running"})
        deadline = time.monotonic() + 60
        while True:
            journal = self("journalctl", "-u", "parley", "--no-pager", "-o", "cat", check=False)
            if journal.count("Server is running on 0.0.0.0:7976...") >= starts:
                return pid
            assert time.monotonic() < deadline, f"not serving:\n{journal[-3000:]}"
            time.sleep(0.5)


@pytest.fixture
def machine(podman: Podman, systemd_image: str) -> Iterator[Machine]:
    name = f"parleysystemd{secrets.token_hex(4)}"
    network = f"{name}net"
    port = free_port()
    podman("network", "create", network)
    try:
        podman(
            *("run", "--detach", "--name", name, "--systemd=always", "--network", network),
            *("--publish", f"127.0.0.1:{port}:7976", systemd_image),
        )
        yield Machine(podman, name, port)
    finally:
        # A run that failed to start may still have created the container: remove it either
        # way, or the network cannot go and its error would hide the real one.
        podman("rm", "--force", "--volumes", "--time", "15", name, timeout=60, check=False)
        podman("network", "rm", network)


def test_the_unit_passes_systemd_analyze_verify_with_the_exposure_the_guide_gives(
    machine: Machine,
) -> None:
    result = machine.podman("exec", machine.name, "systemd-analyze", "verify", UNIT)
    assert result.stderr == ""
    machine.wait_until("active", {"ActiveState": "active"})
    security = machine("systemd-analyze", "security", "parley", "--no-pager")
    match = re.search(r"Overall exposure level for parley\.service: (\d+\.\d+) (\w+)", security)
    assert match, security
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert f'exposure **{match.group(1)} "{match.group(2)}"**' in guide


async def test_the_unit_runs_sandboxed_survives_a_kill_and_stops_cleanly(
    machine: Machine, tmp_path: Path
) -> None:
    pid = machine.wait_serving(starts=1)

    # A dedicated user with no capabilities at all, a read-only system and a private data dir.
    status = machine("cat", f"/proc/{pid}/status")
    assert "CapBnd:\t0000000000000000" in status and "CapEff:\t0000000000000000" in status
    assert "NoNewPrivs:\t1" in status
    assert machine("ps", "-o", "user=", "-p", pid) == "parley"
    assert machine("stat", "-c", "%a %U", "/var/lib/parley") == "700 parley"
    # ProtectSystem=strict: in the service's mount namespace, / is read-only.
    mounts = [line.split() for line in machine("cat", f"/proc/{pid}/mountinfo").splitlines()]
    root_options = next(fields[5] for fields in mounts if fields[4] == "/")
    assert root_options.split(",")[0] == "ro"

    # /readyz on the loopback, as parley.toml asks (metrics_listen).
    url = "http://127.0.0.1:9976/readyz"
    probe = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
    assert machine("python3", "-c", probe) == "ready"

    # systemctl reload: the settings are checked, then SIGHUP; the same process goes on.
    machine("systemctl", "reload", "parley")
    journal = machine("journalctl", "-u", "parley", "--no-pager", "-o", "cat")
    assert "The settings are fine." in journal and "Reloaded the settings" in journal
    # A settings mistake: reload fails, says why, and sends no signal.
    machine("cp", "/etc/parley/parley.toml", "/root/parley.toml")
    machine("sh", "-c", "echo 'alow_guests = false' >> /etc/parley/parley.toml")
    result = machine.podman("exec", machine.name, "systemctl", "reload", "parley", check=False)
    assert result.returncode != 0
    journal = machine("journalctl", "-u", "parley", "--no-pager", "-o", "cat")
    assert "did you mean 'allow_guests'?" in journal
    assert journal.count("Reloaded the settings") == 1
    machine("mv", "/root/parley.toml", "/etc/parley/parley.toml")
    assert machine.show("MainPID", "ActiveState") == {"MainPID": pid, "ActiveState": "active"}

    await say(tmp_path / "alice", machine.chat_port, "Alice", ["Before the crash"], "--trust-new")

    # SIGKILL: systemd starts it again, and the acknowledged message is still there.
    machine("kill", "-KILL", pid)
    machine.wait_until("restarted", {"NRestarts": "1", "ActiveState": "active"})
    new_pid = machine.wait_serving(starts=2)
    assert new_pid != pid
    # The certificate made at first start is kept: the pin from before still matches.
    await history_of(tmp_path / "alice", machine.chat_port, "Alice", ["Alice: Before the crash"])

    await say(tmp_path / "bob", machine.chat_port, "Bob", ["Before the stop"], "--trust-new")
    # systemctl stop: SIGTERM, a clean exit (status 0) well within TimeoutStopSec.
    machine("systemctl", "stop", "parley")
    state = machine.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert state["ActiveState"] == "inactive"
    assert state["Result"] == "success"
    assert (state["ExecMainCode"], state["ExecMainStatus"]) == ("1", "0")  # exited, status 0
    journal = machine("journalctl", "-u", "parley", "--no-pager", "-o", "cat")
    assert "Server stopped." in journal

    machine("systemctl", "start", "parley")
    machine.wait_serving(starts=3)
    await history_of(
        tmp_path / "carol",
        machine.chat_port,
        "Carol",
        ["Alice: Before the crash", "Bob: Before the stop"],
        "--trust-new",
    )
