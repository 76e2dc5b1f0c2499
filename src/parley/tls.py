"""TLS in one place: the server's and the client's SSLContext, the self-signed certificate the
server makes on first start, and certificate fingerprints.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Names every generated certificate covers, so that local clients verify by name too.
DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1", "::1")

# Ten years: the certificate is pinned by clients, so renewing it means every client has to
# accept a new pin; expiry is not what protects a pinned self-signed key.
CERTIFICATE_LIFETIME = datetime.timedelta(days=3650)

# For TLS 1.2 only: forward secrecy and AEAD. TLS 1.3 suites are all of that already.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 minimum; TLS 1.3 is negotiated whenever both sides have it."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    return context


class CertificateProblem(Exception):
    """The server's certificate or key cannot be used; the message names the file and what to
    do about it.
    """


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The server's context. Raises CertificateProblem when the files do not load."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _check_readable(cert_file, "certificate")
    _check_readable(key_file, "private key")
    try:
        x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError:
        raise CertificateProblem(
            f"{cert_file} is not a PEM certificate (it should begin with "
            "'-----BEGIN CERTIFICATE-----'): give the certificate file with --cert."
        ) from None
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            problem = f"{key_file} is not the private key of the certificate {cert_file}"
        else:
            problem = f"{key_file} is not a PEM private key, or it is encrypted ({exc.reason})"
        raise CertificateProblem(
            f"{problem}: give the matching unencrypted key with --key."
        ) from None
    # No TLS 1.3 session tickets: Parley's clients do not resume sessions, and making and
    # sending two tickets per handshake was about 15 % of the server's CPU per connection.
    context.num_tickets = 0
    return context


def client_context(cafile: Path | None) -> ssl.SSLContext:
    """The client's context.

    With ``cafile``: full chain and hostname verification against that CA bundle. Without: the
    handshake accepts any certificate, and the caller must check the peer's fingerprint against
    its pin store before sending anything (trust on first use, see parley.client.pins).
    """
    if cafile is not None:
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile))
        except FileNotFoundError:
            raise CertificateProblem(
                f"--cafile {cafile}: no such file. Give the PEM bundle of the CA that signed "
                "the server's certificate."
            ) from None
        except ssl.SSLError:
            raise CertificateProblem(
                f"--cafile {cafile}: no PEM certificate in it. Give a bundle of CA "
                "certificates in PEM form (-----BEGIN CERTIFICATE-----)."
            ) from None
        except OSError as exc:
            raise CertificateProblem(
                f"--cafile {cafile}: it cannot be read ({exc.strerror}): check its permissions."
            ) from None
        return _harden(context)
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def explain_refusal(exc: ssl.SSLCertVerificationError, cafile: Path | None) -> str:
    """What a user should read when the server's certificate fails CA verification."""
    why = exc.verify_message or exc.reason or str(exc)
    return (
        f"the server's certificate is not accepted with --cafile {cafile} ({why}): check "
        "that this bundle holds the CA that signed it, and connect by a name the certificate "
        "lists (--host)."
    )


def _check_readable(path: Path, what: str) -> None:
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise CertificateProblem(
            f"{path}: no such file. Give the path of the server's PEM {what}, or leave out "
            "--cert and --key to use a self-signed pair made in the data dir."
        ) from None
    except OSError as exc:
        raise CertificateProblem(
            f"{path}: the {what} cannot be read ({exc.strerror}): check its permissions."
        ) from None


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as colon-separated upper-case hex, as openssl prints it."""
    return hashlib.sha256(der).digest().hex(":").upper()


def file_fingerprint(cert_file: Path) -> str:
    """Fingerprint of the first certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


def ensure_certificate(data_dir: Path, hostnames: Iterable[str] = ()) -> tuple[Path, Path]:
    """The data dir's certificate and key, made on first use and reused afterwards.

    Raises CertificateProblem when only one of the two is there: making a new pair would
    replace the server's identity (every client would see a changed certificate), and a
    private key is never overwritten.
    """
    cert_file = data_dir / "cert.pem"
    key_file = data_dir / "key.pem"
    if key_file.exists() and not cert_file.exists():
        raise CertificateProblem(
            f"{cert_file} is missing but {key_file} is there: refusing to replace the private "
            f"key. Restore cert.pem from a backup, or move key.pem out of {data_dir} to make a "
            "new pair (clients will then be told the server's certificate changed)."
        )
    if cert_file.exists() and not key_file.exists():
        raise CertificateProblem(
            f"{key_file} is missing but {cert_file} is there: the certificate is useless "
            f"without its key. Restore key.pem from a backup, or move cert.pem out of "
            f"{data_dir} to make a new pair (clients will then be told the server's "
            "certificate changed)."
        )
    if not cert_file.exists():
        generate_self_signed(cert_file, key_file, [*DEFAULT_HOSTNAMES, *hostnames])
    return cert_file, key_file


def generate_self_signed(cert_file: Path, key_file: Path, hostnames: list[str]) -> None:
    """Write a new self-signed certificate for ``hostnames`` and its key (mode 0600).

    An ECDSA P-256 key: as safe as RSA-3072 and much cheaper per handshake for the server.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created with mode 0600 from the start: the key is never readable by others, even briefly.
    # O_EXCL: an existing key is never overwritten.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    fd = os.open(cert_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
