"""The preview relay's start check: the first line of every connection to a relay.

On Kubernetes the preview gateway reaches a server's app through the relay sidecar at
``<pod IP>:<relay port>``, an address it read from the spawner's state. A pod's IP is
given to another pod once the first is gone, possibly before the hub notices, so the
gateway names the server start it means: every connection it opens begins with
``start_line(start_id)``. A relay started with ``--start-id`` reads that line first and
closes a connection that names another start (or none) without reaching the app; the
rest of the connection is the app's, byte for byte. The line may name a port of the pod
(``CODEPILOT-START <start id> <port>``, a ``<port>--<label>`` preview host): a relay that
picks ports (``relay_picks_port``) joins it to that port if something in the pod listens
there and it is not one of the pod's own; without one, to the app's port, or, where that
refuses, to the port the pod's app listens on instead. The spawner's state says whether the
relay of that start checks (``relay_checks_start`` of its preview route), so the gateway
sends the line only to relays that expect it (pods from before the check keep working).
"""

import re

START_PREFIX = b"CODEPILOT-START "
# The longest first line a relay reads before it gives up on a connection.
MAX_START_LINE = 128
# What a start id may be (the spawner's are 16 hex digits).
START_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def start_line(start_id: str, port: int = 0) -> bytes:
    """The first bytes of a connection to the relay of ``start_id``, for ``port`` of the
    pod (0: the app's)."""
    if not START_ID.fullmatch(start_id):
        raise ValueError(f"not a start id: {start_id!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"not a port: {port!r}")
    named_port = f" {port}".encode() if port else b""
    return START_PREFIX + start_id.encode() + named_port + b"\r\n"


def parse_start_line(line: bytes) -> tuple[str, int] | None:
    """``(start id, port)`` of a start line (port 0 when it names none), or None."""
    if not line.startswith(START_PREFIX) or not line.endswith(b"\r\n"):
        return None
    start_id, _, port = line[len(START_PREFIX) : -2].decode("ascii", "replace").partition(" ")
    if not START_ID.fullmatch(start_id):
        return None
    if not port:
        return start_id, 0
    if not re.fullmatch(r"[1-9][0-9]{0,4}", port) or int(port) > 65535:
        return None
    return start_id, int(port)
