"""Self-signed certificates for HTTPS hubs in tests, as an operator makes one for a trial
(README, HTTPS): a key, and a certificate naming the hub and the wildcards it needs."""

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path
    key: Path
    spki_sha256: str  # what Chromium's --ignore-certificate-errors-spki-list takes


def make_certificate(
    folder: Path,
    names: list[str],
    name: str = "server",
    days: int = 30,
    key=None,
    expired: bool = False,
) -> CertificateFiles:
    """``<name>.pem`` and ``<name>.key`` in ``folder``, for ``names`` (DNS names, or IP
    addresses); ``key``: another pair's key, else a new one."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    start, end = (
        (now - datetime.timedelta(days=2), now - datetime.timedelta(days=1))
        if expired
        else (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else name)])
    alt_names = [_alt_name(n) for n in names]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    # As ``openssl req -x509`` makes it: its own authority, so a client may trust it alone.
    builder = builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CertificateFiles(
        cert_path, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode()
    )


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
