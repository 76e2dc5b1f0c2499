"""TLS files for ngIRCd: a self-signed certificate and Diffie-Hellman parameters.

The certificate is the kind Parley makes for itself (ECDSA P-256, signed with SHA-256), so both
servers authenticate their handshakes with the same algorithm.

ngIRCd built with GnuTLS generates fresh 2,048-bit DH parameters at every start when it has no
``DHFile``, which costs a second or more per run. The bench gives it the RFC 7919 ``ffdhe2048``
group once, cached. The parameters are never used by the handshakes measured here: the clients
offer TLS 1.3 with elliptic-curve key shares.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec
from cryptography.x509.oid import NameOID

DH_FILE_NAME = "ffdhe2048.pem"


def write_self_signed(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def dh_parameters(cache_dir: Path) -> Path:
    """A PEM file of DH parameters, made once and reused by every later run."""
    path = cache_dir / DH_FILE_NAME
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl")
    if openssl is not None:
        # The named RFC 7919 group: instant, and a group every TLS library knows.
        pem = subprocess.run(
            [openssl, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    else:
        print("Generating 2,048-bit DH parameters for ngIRCd once (up to a minute or so)...")
        pem = dh.generate_parameters(generator=2, key_size=2048).parameter_bytes(
            serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3
        )
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(pem)
    partial.replace(path)
    return path
