"""Signed values the preview gateway hands out: sign-in tickets and session cookies.

Both are ``<base64url JSON>.<base64url HMAC-SHA256>``, signed with the gateway's own
secret, and bound to one preview label and one start of its server (a restarted server
gets a new ``start`` and every old value stops working). A ticket also carries a nonce,
which the gateway accepts once.
"""

import base64
import hashlib
import hmac
import json


class InvalidToken(ValueError):
    """A ticket or cookie that is forged, expired, for another preview or malformed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, kind: str, claims: dict) -> str:
    """``claims`` (JSON-able, with ``exp``) signed for one purpose (``kind``)."""
    body = _b64(json.dumps({**claims, "kind": kind}, separators=(",", ":")).encode())
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(secret: bytes, kind: str, token: str, now: float, **expected) -> dict:
    """The claims of ``token`` if its signature, kind, expiry and ``expected`` claims hold.

    Raises ``InvalidToken`` with a reason a person can read.
    """
    body, _, mac = token.partition(".")
    try:
        given = _unb64(mac)
    except ValueError:
        raise InvalidToken("malformed signature") from None
    wanted = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(given, wanted):
        raise InvalidToken("bad signature")
    claims = json.loads(_unb64(body))
    if claims.get("kind") != kind:
        raise InvalidToken(f"not a {kind}")
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now:
        raise InvalidToken("expired")
    for name, value in expected.items():
        if claims.get(name) != value:
            raise InvalidToken(f"issued for another {name}")
    return claims
