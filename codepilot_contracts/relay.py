"""The preview relay's start check: the first line of every connection to a relay.

On Kubernetes the preview gateway reaches a server's app through the relay sidecar at
``<pod IP>:<relay port>``, an address it read from the spawner's state. A pod's IP is
given to another pod once the first is gone, possibly before the hub notices, so the
gateway names the server start it means: every connection it opens begins with
``start_line(start_id)``. A relay started with ``--start-id`` reads that line first and
closes a connection that names another start (or none) without reaching the app; the
rest of the connection is the app's, byte for byte. The spawner's state says whether the
relay of that start checks (``relay_checks_start`` of its preview route), so the gateway
sends the line only to relays that expect it (pods from before the check keep working).
"""

import re

START_PREFIX = b"CODEPILOT-START "
# The longest first line a relay reads before it gives up on a connection.
MAX_START_LINE = 128
# What a start id may be (the spawner's are 16 hex digits).
START_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def start_line(start_id: str) -> bytes:
    """The first bytes of a connection to the relay of ``start_id``."""
    if not START_ID.fullmatch(start_id):
        raise ValueError(f"not a start id: {start_id!r}")
    return START_PREFIX + start_id.encode() + b"\r\n"
