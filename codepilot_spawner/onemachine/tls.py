"""The certificate and key the one-machine hub serves HTTPS with, checked before it starts.

A pair is read from two variables (``CODEPILOT_SSL_CERT``/``CODEPILOT_SSL_KEY``, or the
previews' own); every problem a browser or the proxy would meet later (a half pair, a file
that cannot be read, a key of another certificate, a name the certificate does not cover)
is refused at start, in one line naming the variable; so is a key every user may read,
which a student's server could copy to pose as the hub.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization


class CertificateError(ValueError):
    """A certificate or key the hub cannot serve HTTPS with."""


@dataclass(frozen=True)
class TLSPair:
    """A certificate (PEM, the server's first, then its chain) and its private key."""

    cert: Path
    key: Path
    cert_variable: str
    names: tuple[str, ...]  # the DNS names and IP addresses it covers, lowercase

    def missing(self, needed: list[str]) -> list[str]:
        """Of ``needed`` names (``*.<domain>`` for a wildcard), those it does not cover."""
        return [name for name in needed if not covers(self.names, name)]


def covers(names, needed: str) -> bool:
    """Whether a certificate of ``names`` is valid for ``needed``: a wildcard
    (``*.example.org``) only by the same wildcard, a host by its name or by a wildcard of
    its parent (one label, as browsers match)."""
    needed = needed.lower().rstrip(".")
    if needed in names:
        return True
    if needed.startswith("*."):
        return False
    first, _, parent = needed.partition(".")
    return bool(first and parent) and f"*.{parent}" in names


def read_pair(env, cert_variable: str, key_variable: str) -> TLSPair | None:
    """The pair the two variables name, checked; None when neither is set."""
    cert_path, key_path = env.get(cert_variable, ""), env.get(key_variable, "")
    if not cert_path and not key_path:
        return None
    if not key_path:
        raise CertificateError(
            f"{cert_variable} is set but {key_variable} is not: HTTPS needs the "
            "certificate and its private key"
        )
    if not cert_path:
        raise CertificateError(
            f"{key_variable} is set but {cert_variable} is not: HTTPS needs the "
            "certificate and its private key"
        )
    cert_pem = _read(cert_variable, cert_path)
    key_pem = _read(key_variable, key_path)
    try:
        certificate = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise CertificateError(
            f"{cert_variable}={cert_path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError(
            f"{key_variable}={key_path} is protected by a passphrase, which the proxy cannot "
            f"ask for: write it without one (openssl pkey -in {key_path} -out <new file>)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(
            f"{key_variable}={key_path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
        ) from None
    if Path(key_path).stat().st_mode & 0o004:
        raise CertificateError(
            f"{key_variable}={key_path} is readable by every user of this machine, the "
            f"students' servers included: chmod 600 {key_path}"
        )
    if _public(key.public_key()) != _public(certificate.public_key()):
        raise CertificateError(
            f"{key_variable}={key_path} is not the key of the certificate in "
            f"{cert_variable}={cert_path}"
        )
    if certificate.not_valid_after_utc < datetime.now(UTC):
        raise CertificateError(
            f"{cert_variable}={cert_path} expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}: browsers refuse it"
        )
    return TLSPair(
        cert=Path(cert_path).resolve(),
        key=Path(key_path).resolve(),
        cert_variable=cert_variable,
        names=certificate_names(certificate),
    )


def certificate_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The names in its subjectAltName (browsers ignore the common name)."""
    try:
        alt_names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        return ()
    dns = [name.lower().rstrip(".") for name in alt_names.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in alt_names.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def normal_host(host: str) -> str:
    """A host as certificates name it: lowercase, an IP address in its usual form."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _read(variable: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CertificateError(f"{variable}={path} cannot be read: {error.strerror}") from None


def _public(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
