"""The credential broker's API: where a user server renews its S3 credentials, and the answer.

The broker is a hub service named ``SERVICE_NAME``. A server calls
``GET <hub base>services/<SERVICE_NAME>/api/credentials`` with its own
``JUPYTERHUB_API_TOKEN`` and gets botocore credential metadata as a JSON object with
``RESPONSE_KEYS``; ``expiry_time`` is ISO 8601 (``token`` and ``expiry_time`` are null in
static mode, where the keys never expire).
"""

import json
import posixpath

SERVICE_NAME = "codepilot-credentials"
# The route under the service's prefix; ``<route>/<user>`` names the user explicitly.
CREDENTIALS_PATH = "api/credentials"
RESPONSE_KEYS = ("access_key", "secret_key", "token", "expiry_time")


def credentials_path(base_url: str = "/") -> str:
    """``"/hub-base/"`` -> ``"/hub-base/services/codepilot-credentials/api/credentials"``."""
    return posixpath.join("/", base_url.strip("/"), "services", SERVICE_NAME, CREDENTIALS_PATH)


def credentials_body(access_key: str, secret_key: str, token, expiry_time) -> dict:
    """The broker's answer: botocore's refreshable-credential metadata."""
    return {
        "access_key": access_key,
        "secret_key": secret_key,
        "token": token,
        "expiry_time": expiry_time,
    }


def parse_credentials_body(data: bytes | str) -> dict:
    """The broker's answer as a dict; ``ValueError`` naming what is missing or wrong."""
    try:
        body = json.loads(data)
    except ValueError as error:
        raise ValueError(f"the broker's answer is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ValueError("the broker's answer is not a JSON object")
    missing = [key for key in RESPONSE_KEYS if key not in body]
    if missing:
        raise ValueError(f"the broker's answer lacks {', '.join(missing)}")
    for key in ("access_key", "secret_key"):
        if not isinstance(body[key], str) or not body[key]:
            raise ValueError(f"the broker's answer has no {key}")
    return {key: body[key] for key in RESPONSE_KEYS}
