"""Preview origins: one host per user server, under a domain that is not the hub's.

The preview of server ``<server>`` of ``<user>`` is served at
``<scheme>://<label>.<preview domain>[:<port>]/``. The label is a pure function of the
two names, so it is stable across restarts, and it carries a 100-bit digest of them, so
two servers never share a label whatever their names look like (``a-b`` and ``a--b``,
``Alice`` and ``alice``, any unicode). The readable part in front is for people only.
"""

import base64
import hashlib
import re
import unicodedata
from dataclasses import dataclass

# A DNS label is at most 63 characters; the readable part leaves room for the digest and
# for a port in front of the whole (``65535--<label>``, see ``codepilot_contracts.porthosts``).
READABLE_MAX = 35
DIGEST_CHARS = 20  # base32: 5 bits each, 100 bits


def preview_label(user: str, server: str = "") -> str:
    """``("Alice", "blog")`` -> ``"alice-blog-<20 base32 chars>"`` (DNS-safe, <= 56 chars)."""
    identity = f"{user}\0{server}".encode()
    digest = base64.b32encode(hashlib.sha256(identity).digest()).decode().lower()
    readable = "-".join(part for part in (user, server) if part)
    readable = unicodedata.normalize("NFKD", readable).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-z0-9]+", "-", readable.lower()).strip("-")
    readable = readable[:READABLE_MAX].rstrip("-")
    return f"{readable}-{digest[:DIGEST_CHARS]}" if readable else digest[:DIGEST_CHARS]


@dataclass(frozen=True)
class PreviewDomain:
    """Where preview origins live: ``<scheme>://<label>.<domain>[:<port>]``."""

    domain: str = "preview.localhost"
    scheme: str = "http"
    port: int = 0  # 0: the scheme's default port, left out of URLs

    def origin(self, label: str) -> str:
        default_port = {"http": 80, "https": 443}[self.scheme]
        port = f":{self.port}" if self.port and self.port != default_port else ""
        return f"{self.scheme}://{label}.{self.domain}{port}"

    def url(self, user: str, server: str = "") -> str:
        """The preview URL of a server, with the trailing slash apps expect."""
        return self.origin(preview_label(user, server)) + "/"

    def label_of(self, host: str) -> str | None:
        """The label in a ``Host`` header (``label.domain[:port]``), or None if not ours."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        suffix = "." + self.domain
        if not name.endswith(suffix):
            return None
        label = name[: -len(suffix)]
        if not label or "." in label or len(label) > 63:
            return None
        return label
