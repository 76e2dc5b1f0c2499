"""Trust on first use: the SHA-256 fingerprint of each server's certificate, pinned on the
first connection and required to match on every later one (like SSH's known_hosts).
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from parley.protocol.errors import ParleyError


class PinStatus(enum.Enum):
    PINNED_NOW = "pinned-now"  # first connection: the fingerprint was just recorded
    MATCHED = "matched"  # same certificate as before


class CertificateChanged(ParleyError):
    """The server presented a certificate other than the pinned one. Nothing was sent to it."""

    def __init__(self, server: str, pinned: str, presented: str, pin_file: Path) -> None:
        self.server = server
        self.pinned = pinned
        self.presented = presented
        self.pin_file = pin_file
        super().__init__(f"certificate of {server} changed")

    def explain(self) -> str:
        """The warning shown to the user, with both fingerprints and how to accept the new one."""
        return (
            f"WARNING: the certificate of {self.server} has CHANGED.\n"
            f"  pinned:    {self.pinned}\n"
            f"  presented: {self.presented}\n"
            "Someone may be intercepting the connection, or the server may have a new "
            "certificate.\nThe connection was closed and nothing was sent. If you trust the new "
            f"certificate, delete the line for {self.server}\nfrom {self.pin_file} and connect "
            "again."
        )


def server_name(host: str, port: int) -> str:
    """How a server is named in the pin file: host:port, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PinStore:
    """A text file of ``host:port FINGERPRINT`` lines. Lines starting with '#' are comments."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        pins: dict[str, str] = {}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 2 and not fields[0].startswith("#"):
                pins[fields[0]] = fields[1]
        return pins

    def check(self, server: str, fingerprint: str) -> PinStatus:
        """Compare ``fingerprint`` with the pin for ``server``, pinning it if there is none.

        Raises CertificateChanged on a mismatch. Reads the file; writes it only on first use.
        """
        pinned = self._load().get(server)
        if pinned is None:
            self._add(server, fingerprint)
            return PinStatus.PINNED_NOW
        if pinned != fingerprint:
            raise CertificateChanged(server, pinned, fingerprint, self.path)
        return PinStatus.MATCHED

    def pinned(self, server: str) -> str | None:
        """The fingerprint pinned for ``server``, if any."""
        return self._load().get(server)

    def pin(self, server: str, fingerprint: str) -> None:
        """Trust ``fingerprint`` for ``server`` from now on (a user accepted it)."""
        if self.pinned(server) is None:
            self._add(server, fingerprint)

    def _add(self, server: str, fingerprint: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        fd = os.open(self.path, flags, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(f"{server} {fingerprint}\n")
