"""The fork server's channel: how the hub asks it for a server, and how it answers.

The hub writes requests to the fork server's stdin, each a 4-byte big-endian length and
then that much JSON (``encode_request``; the child that takes it reads it with
``read_request``). Answers come back on the fork server's stdout, one JSON object per
line (``encode_reply``/``parse_reply``): first ``{"ready": true, ...}`` or
``{"error": ...}`` once its imports are done, then per request ``{"id", "pid"}`` or
``{"id", "error"}``.

The hub starts the fork server with ``ENVIRONMENT_SPACE`` set to ``ENVIRONMENT_SPACE_BYTES``
of filler: the room where each child writes its own environment, so that
``/proc/<pid>/environ`` shows the server's.
"""

import json
import os

ENVIRONMENT_SPACE = "CODEPILOT_FORK_ENVIRONMENT_SPACE"
ENVIRONMENT_SPACE_BYTES = 32 * 1024
_LENGTH_BYTES = 4


def encode_request(request: dict) -> bytes:
    body = json.dumps(request).encode()
    return len(body).to_bytes(_LENGTH_BYTES, "big") + body


def _read_exactly(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_request(fd: int) -> dict | None:
    """The next request on ``fd``; None when the hub closed the channel."""
    header = _read_exactly(fd, _LENGTH_BYTES)
    body = header and _read_exactly(fd, int.from_bytes(header, "big"))
    return json.loads(body) if body is not None else None


def encode_reply(reply: dict) -> bytes:
    return json.dumps(reply).encode() + b"\n"


def parse_reply(line: bytes) -> dict:
    """One answer line; ``ValueError`` when it is not a JSON object."""
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError(f"fork server reply is not an object: {line[:80]!r}")
    return reply
