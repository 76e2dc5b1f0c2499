"""compose.yaml as docs/deploy.md runs it: Parley and PostgreSQL from the repository's
Containerfiles, a certificate from a real authority, and the real client over the published
port. History outlives a restart of the container and a re-creation of both.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from authority import Authority, make_authority
from chat import history_of, http_get, metric, refused, say, wait_for_http, wait_for_log
from podman_lab import PARLEY_UID, ROOT, Podman, free_port, run

SERVING = r"^Server is running on 0\.0\.0\.0:7976\.\.\.$"


@dataclass
class Stack:
    podman: Podman
    project: str
    env: dict[str, str]
    etc: Path
    chat_port: int
    metrics_port: int

    @property
    def parley(self) -> str:
        return f"{self.project}_parley_1"

    @property
    def postgres(self) -> str:
        return f"{self.project}_postgres_1"

    def compose(self, *args: str, timeout: float = 300) -> str:
        result = self.podman.compose(
            ROOT / "compose.yaml", self.project, *args, env=self.env, timeout=timeout
        )
        return result.stdout

    def up(self) -> None:
        """Start PostgreSQL, and Parley once PostgreSQL is healthy (podman-compose does not
        wait for the healthy condition itself, as Docker Compose does).
        """
        self.compose("up", "-d", "postgres")
        self.podman.wait_healthy(self.postgres, timeout=120)
        self.compose("up", "-d", "parley")


def install_certificate(podman: Podman, etc: Path, lineage: Path, reload: str) -> None:
    """What certbot does after an issue or a renewal: run the deploy hook."""
    run(
        [ROOT / "deploy" / "certbot-deploy-hook"],
        env={
            **podman.env,
            "RENEWED_LINEAGE": str(lineage),
            "TLS_DIR": str(etc / "tls"),
            "TLS_OWNER": str(PARLEY_UID),
            "RELOAD": reload,
        },
        timeout=60,
    )


def etc_dir(podman: Podman, folder: Path, authority: Authority) -> Path:
    """/etc/parley as docs/deploy.md sets it up: the settings with the certificate's lines, and
    the certificate put in tls/ by the certbot deploy hook.
    """
    shutil.copy2(ROOT / "deploy" / "etc" / "parley.toml", folder / "parley.toml")
    with (folder / "parley.toml").open("a") as settings:
        settings.write(
            'cert_file = "/etc/parley/tls/fullchain.pem"\n'
            'key_file = "/etc/parley/tls/privkey.pem"\n'
        )
    folder.chmod(0o755)
    install_certificate(podman, folder, authority.cert_file.parent, reload="true")
    key = folder / "tls" / "privkey.pem"
    assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (PARLEY_UID, 0o600)
    return folder


@pytest.fixture
def stack(
    podman: Podman,
    compose_image: str,
    postgres_image: str,
    authority: Authority,
    tmp_path: Path,
) -> Iterator[Stack]:
    etc = tmp_path / "etc"
    etc.mkdir()
    running = Stack(
        podman=podman,
        project=f"parleytest{secrets.token_hex(4)}",
        env={
            "CHAT_IMAGE": compose_image,
            "CHAT_POSTGRES_IMAGE": postgres_image,
            "CHAT_DB_PASSWORD": secrets.token_hex(16),
            "CHAT_ETC": str(etc_dir(podman, etc, authority)),
            "CHAT_PORT": str(free_port()),
            "CHAT_FILES_PORT": str(free_port()),
            "CHAT_METRICS_PORT": str(free_port()),
        },
        etc=etc,
        chat_port=0,
        metrics_port=0,
    )
    running.chat_port = int(running.env["CHAT_PORT"])
    running.metrics_port = int(running.env["CHAT_METRICS_PORT"])
    try:
        yield running
    finally:
        running.compose("down", "--volumes", "--timeout", "15")


async def test_the_stack_keeps_history_across_restarts_over_real_tls(
    stack: Stack, authority: Authority, tmp_path: Path
) -> None:
    stack.up()
    wait_for_log(stack.podman, stack.parley, SERVING, timeout=60)
    log = stack.podman("logs", stack.parley).stdout
    assert "Database: PostgreSQL parley@postgres:5432/parley" in log
    # The password given by the environment is never printed.
    assert stack.env["CHAT_DB_PASSWORD"] not in log

    # Ready, by compose.yaml's health check (the image, as podman builds it, has none) and by
    # /readyz on the host's loopback.
    image = json.loads(stack.podman("image", "inspect", stack.env["CHAT_IMAGE"]).stdout)[0]
    assert image.get("Healthcheck") is None
    stack.podman.wait_healthy(stack.parley, timeout=60)
    assert http_get(stack.metrics_port, "/readyz") == (200, "ready")
    assert http_get(stack.metrics_port, "/healthz")[0] == 200

    # Not root, and the data dir private, on a fresh named volume.
    assert stack.podman("exec", stack.parley, "id", "-u").stdout.strip() == str(PARLEY_UID)
    owner = stack.podman("exec", stack.parley, "stat", "-c", "%a %U", "/data").stdout.strip()
    assert owner == "700 parley"

    # Verified against the authority, by host name: no pinning, no question; by another name
    # than the certificate's, refused.
    trust = ("--cafile", str(authority.ca_file))
    status, err = await refused(tmp_path / "mallory", "127.0.0.1", stack.chat_port, *trust)
    assert status == 1
    assert "Cannot connect to 127.0.0.1" in err and "certificate" in err, err
    await say(tmp_path / "alice", stack.chat_port, "Alice", ["Hello from the container"], *trust)

    # A renewal: the deploy hook puts the new files in place and signals the container; the
    # next connections get the new certificate, without a restart.
    renewed = make_authority(tmp_path / "renewed")
    signal = f"podman kill --signal HUP {stack.parley}"
    install_certificate(stack.podman, stack.etc, renewed.cert_file.parent, reload=signal)
    wait_for_log(stack.podman, stack.parley, r"Reloaded the settings", timeout=30)
    status, err = await refused(tmp_path / "mallory", "localhost", stack.chat_port, *trust)
    assert status == 1 and "certificate" in err, err
    trust = ("--cafile", str(renewed.ca_file))

    # parley admin in the container works on the server's database (PARLEY_DATABASE).
    users = stack.podman("exec", stack.parley, "parley", "admin", "users").stdout
    assert "admin" in users

    # Backups as docs/deploy.md takes them: the database with pg_dump, the files, certificate
    # and key with parley admin backup --files-only, each copied out of its container.
    backups = tmp_path / "backups"
    backups.mkdir()
    run(
        [
            "sh",
            "-c",
            f"podman exec {stack.postgres} pg_dump -U parley --format=custom parley"
            f" > {backups / 'parley.dump'}",
        ],
        env=stack.podman.env,
        timeout=120,
    )
    dump = backups / "parley.dump"
    listing = run(
        ["sh", "-c", f"podman exec -i {stack.postgres} pg_restore --list < {dump}"],
        env=stack.podman.env,
        timeout=120,
    ).stdout
    assert "TABLE DATA" in listing
    stack.podman("exec", stack.parley, "parley", "admin", "backup", "/tmp/files", "--files-only")
    stack.podman("cp", f"{stack.parley}:/tmp/files", backups / "files")
    assert (backups / "files" / "parley-backup.json").is_file()
    assert (backups / "files" / "cert.pem").read_bytes() == renewed.cert_file.read_bytes()

    stack.podman("restart", "--time", "15", stack.parley, timeout=60)
    wait_for_log(stack.podman, stack.parley, SERVING, count=2, timeout=60)
    # SIGTERM ended the server cleanly before the restart.
    assert "Server stopped." in stack.podman("logs", stack.parley).stdout
    await say(tmp_path / "bob", stack.chat_port, "Bob", ["Still here after a restart"], *trust)
    # The counters start again at each start: Bob's is the one message stored since.
    _, page = http_get(stack.metrics_port, "/metrics")
    assert metric(page, "parley_messages_stored_total") == 1

    # PostgreSQL gone: not ready, and the HEALTHCHECK fails; back: ready again.
    stack.podman("stop", "--time", "15", stack.postgres, timeout=60)
    body = wait_for_http(stack.metrics_port, "/readyz", 503, timeout=30)
    assert body.startswith("not ready: storage"), body
    assert stack.podman("healthcheck", "run", stack.parley, check=False).returncode != 0
    stack.podman("start", stack.postgres, timeout=60)
    stack.podman.wait_healthy(stack.postgres, timeout=120)
    assert wait_for_http(stack.metrics_port, "/readyz", 200, timeout=60) == "ready"

    # Both containers made anew (as an upgrade does); the named volumes stay.
    stack.compose("down", "--timeout", "15")
    stack.up()
    wait_for_log(stack.podman, stack.parley, SERVING, timeout=60)
    await history_of(
        tmp_path / "carol",
        stack.chat_port,
        "Carol",
        ["Alice: Hello from the container", "Bob: Still here after a restart"],
        *trust,
    )

    # A lost machine, restored as docs/deploy.md says: a fresh stack on empty volumes, then
    # Parley stopped, the files put into its volume by the image's user, and the database.
    stack.compose("down", "--volumes", "--timeout", "15")
    stack.up()
    wait_for_log(stack.podman, stack.parley, SERVING, timeout=60)
    stack.podman("stop", "--time", "15", stack.parley, timeout=60)
    run(
        [
            "sh",
            "-c",
            f"tar -C {backups / 'files'} -c . | podman run --rm -i"
            f" -v {stack.project}_parley-data:/data --entrypoint sh {stack.env['CHAT_IMAGE']}"
            " -c 'mkdir /tmp/files && tar -x -C /tmp/files"
            " && parley admin restore /tmp/files --data-dir /data --force'",
        ],
        env=stack.podman.env,
        timeout=180,
    )
    run(
        [
            "sh",
            "-c",
            f"podman exec -i {stack.postgres} pg_restore -U parley --clean --if-exists"
            f" --no-owner -d parley < {dump}",
        ],
        env=stack.podman.env,
        timeout=120,
    )
    stack.podman("start", stack.parley, timeout=60)
    wait_for_log(stack.podman, stack.parley, SERVING, count=2, timeout=60)
    restored_cert = stack.podman("exec", stack.parley, "cat", "/data/cert.pem").stdout
    assert restored_cert == renewed.cert_file.read_text()
    await history_of(
        tmp_path / "erin", stack.chat_port, "Erin", ["Alice: Hello from the container"], *trust
    )
