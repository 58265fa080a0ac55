"""Which requests may use the viewer's preview cookie: every preview is the same site, so
only a preview's own pages and a person's visits count (``cookie_reading``)."""

from urllib.parse import urlsplit

from aiohttp import web

# What a request's context says about the viewer's cookie (``cookie_reading``).
COOKIE_COUNTS = "counts"
COOKIE_REFUSED = "refused"
COOKIE_AFTER_BOUNCE = "after-bounce"  # counts once a page of the preview asks again


def cookie_reading(request: web.BaseRequest, origin: str) -> str:
    """Whether this request may use the viewer's cookie at all.

    Every preview is the same *site* (``*.<preview domain>``), so SameSite=Lax alone would
    let one preview's page send requests to another preview with its viewer's cookie.
    Only same-origin requests and top-level GET navigations count; a websocket must come
    from the preview's own page.

    Browsers send ``Sec-Fetch-*`` to secure origins only (HTTPS, localhost). Without
    them (a school network over plain HTTP) the safe reading is taken: ``Origin`` or
    ``Referer`` must be the preview's own; a GET for a page from elsewhere (a typed
    address, a link, or another preview's ``<iframe>`` or ``<script>``) is answered
    with a page of the preview's own that asks again (``pages.bounce``), with the
    preview as its referrer, so only a person's visit goes on.
    """
    sent_origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if sent_origin is not None and sent_origin != origin:
            return COOKIE_COUNTS if is_top_level_get(request) else COOKIE_REFUSED
        if site in ("same-origin", "none") or is_top_level_get(request):
            return COOKIE_COUNTS
        return COOKIE_REFUSED
    if sent_origin is not None:
        return COOKIE_COUNTS if sent_origin == origin else COOKIE_REFUSED
    if origin_of(request.headers.get("Referer", "")) == origin:
        return COOKIE_COUNTS
    return COOKIE_AFTER_BOUNCE if is_top_level_get(request) else COOKIE_REFUSED


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``; empty when it names none."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def is_top_level_get(request: web.BaseRequest) -> bool:
    """A GET that may be a person's visit: marked a navigation where browsers say so
    (``Sec-Fetch-Mode``), else one that asks for a page."""
    if request.method not in ("GET", "HEAD") or is_websocket(request):
        return False
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in request.headers.get("Accept", "")


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"
