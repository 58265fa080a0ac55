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
    return check_claims(signed_claims(secret, token), kind, now, **expected)


def signed_claims(secret: bytes, token: str) -> dict:
    """The claims of ``token`` if ``secret`` signed it (whatever they say)."""
    body, _, mac = token.partition(".")
    try:
        given = _unb64(mac)
    except ValueError:
        raise InvalidToken("malformed signature") from None
    wanted = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(given, wanted):
        raise InvalidToken("bad signature")
    claims = json.loads(_unb64(body))
    if not isinstance(claims, dict):
        raise InvalidToken("malformed claims")
    return claims


def check_claims(claims: dict, kind: str, now: float, **expected) -> dict:
    """``claims`` if their kind, expiry and ``expected`` values hold, else ``InvalidToken``."""
    if claims.get("kind") != kind:
        raise InvalidToken(f"not a {kind}")
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now:
        raise InvalidToken("expired")
    for name, value in expected.items():
        if claims.get(name) != value:
            raise InvalidToken(f"issued for another {name}")
    return claims


class CheckedValues:
    """``verify`` for a value sent again and again (a viewer's session cookie rides on
    every request of a page): its signature is checked once, its claims every time. At
    most ``size`` values are remembered, the oldest forgotten first; a value that fails
    its signature check is not remembered."""

    def __init__(self, secret: bytes, size: int = 10_000):
        self.secret, self.size = secret, size
        self._claims: dict[str, dict] = {}

    def verify(self, kind: str, token: str, now: float, **expected) -> dict:
        claims = self._claims.get(token)
        if claims is None:
            claims = signed_claims(self.secret, token)
            if len(self._claims) >= self.size:
                del self._claims[next(iter(self._claims))]
            self._claims[token] = claims
        return check_claims(claims, kind, now, **expected)
