"""What crosses the preview's hop, each way: the request minus everything that could
identify the viewer (the preview's own cookies, any hub or IDE cookie, ``Authorization``,
the client's ``X-Forwarded-*``), and the app's answer minus the hop's own headers, its
cookies kept to its own preview host."""

import re

from aiohttp import web
from multidict import CIMultiDict

SESSION_COOKIE = "codepilot_preview_session"

# The browser a sign-in began in (``bind_sign_in``): sent to the end of sign-in only.
BROWSER_COOKIE = "codepilot_preview_browser"

# Cookies of the hub and of JupyterLab servers, stripped should the preview domain ever
# share a parent domain with the hub.
IDENTITY_COOKIE_PREFIXES = ("jupyterhub-", "_xsrf", SESSION_COOKIE, BROWSER_COOKIE)
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
VIEWER_HEADERS = {"authorization", "proxy-authorization", "forwarded", "x-real-ip", "cookie"}
DROPPED_HEADERS = HOP_BY_HOP | VIEWER_HEADERS
_COOKIE_DOMAIN = re.compile(r";\s*domain\s*=[^;]*", re.IGNORECASE)


def app_cookies(cookie_header: str) -> str:
    """The ``Cookie`` header without the viewer's identity cookies (the app's own pass)."""
    kept = []
    for part in cookie_header.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and not name.startswith(IDENTITY_COOKIE_PREFIXES):
            kept.append(part.strip())
    return "; ".join(kept)


def upstream_headers(request: web.BaseRequest, scheme: str) -> list[tuple[str, str]]:
    """What the app receives: the request's headers minus the viewer's credentials."""
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if (lower := name.lower()) not in DROPPED_HEADERS and not lower.startswith("x-forwarded-")
    ]
    cookies = app_cookies(request.headers.get("Cookie", ""))
    if cookies:
        headers.append(("Cookie", cookies))
    headers.append(("X-Forwarded-Proto", scheme))
    headers.append(("X-Forwarded-Host", request.host))
    if request.remote:
        headers.append(("X-Forwarded-For", request.remote))
    return headers


def session_cookie_values(cookie_header: str, cookie: str = SESSION_COOKIE) -> list[str]:
    """Every value sent under a cookie's name (an app may have set one too)."""
    values = []
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == cookie and value:
            values.append(value)
    return values


def host_only_cookie(set_cookie: str) -> str:
    """An app's ``Set-Cookie`` without its ``Domain``: a cookie of its own preview host,
    never one that every other preview under the domain receives."""
    return _COOKIE_DOMAIN.sub("", set_cookie)


def viewer_headers(app_headers: list[tuple[str, str]]) -> CIMultiDict:
    """What the viewer receives of the app's headers: its cookies for its own host only,
    and nothing that concerned the hop from the app."""
    return CIMultiDict(
        (name, host_only_cookie(value) if name.lower() == "set-cookie" else value)
        for name, value in app_headers
        if name.lower() not in HOP_BY_HOP
    )
