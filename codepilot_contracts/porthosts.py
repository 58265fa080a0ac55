"""Preview hosts of a server's other ports: ``<port>--<label>.<preview domain>``.

The main preview of a server is ``<label>.<preview domain>``; every other port its
processes listen on is previewed at ``<port>--<label>.<preview domain>``, an origin of
its own, as Codespaces and Coder forward each port. A label never holds ``--`` (its
readable part has single hyphens only), so the port is read back without doubt; labels
are at most 56 characters, so ``65535--<label>`` still fits a DNS label (63).
"""

import re
from urllib.parse import urlsplit, urlunsplit

SEPARATOR = "--"
_PORT_LABEL = re.compile(r"([1-9][0-9]{0,4})--(.+)")


def port_label(port: int, label: str) -> str:
    """``(5173, "alice-xyz")`` -> ``"5173--alice-xyz"``."""
    return f"{int(port)}{SEPARATOR}{label}"


def split_port_label(host_label: str) -> tuple[int, str]:
    """``"5173--alice-xyz"`` -> ``(5173, "alice-xyz")``; a main host's label -> ``(0,
    label)``; a port out of range -> ``(-1, "")``, which names no server."""
    match = _PORT_LABEL.fullmatch(host_label)
    if match is None:
        return 0, host_label
    port = int(match.group(1))
    return (port, match.group(2)) if port <= 65535 else (-1, "")


def port_url(preview_url: str, port: int) -> str:
    """The preview URL of ``port`` of the server whose main preview is ``preview_url``."""
    parts = urlsplit(preview_url)
    return urlunsplit(parts._replace(netloc=f"{port}{SEPARATOR}{parts.netloc}", path="/"))
