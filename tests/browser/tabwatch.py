"""What a tab asks of the network over a span of time: its requests and sockets, named."""

import re
import time
from collections.abc import Callable
from urllib.parse import urlparse

from playwright.sync_api import Page


def request_kind(url: str, user: str, server: str = "") -> str:
    """``api/contents``-like name of a request to a server: the path after
    ``/user/<user>/`` (and ``<server>/``), kernel and session ids replaced by ``<id>``."""
    project = f"({re.escape(server)}/)?" if server else ""
    path = re.sub(rf"^/user/{re.escape(user)}/{project}", "", urlparse(url).path)
    return re.sub(r"/[^/]*[0-9a-f]{8}-[^/]*", "/<id>", path)


def requests_after(
    page: Page, action: Callable[[], object], seconds: float, name: Callable[[str], str]
) -> list[str]:
    """``<METHOD> name(url)`` of each request and ``WS name(url)`` of each socket that
    ``page`` opens in the ``seconds`` from the start of ``action()``, which runs first."""
    seen = []

    def on_request(request):
        seen.append((time.monotonic(), f"{request.method} {name(request.url)}"))

    def on_websocket(socket):
        seen.append((time.monotonic(), f"WS {name(socket.url)}"))

    page.on("request", on_request)
    page.on("websocket", on_websocket)
    started = time.monotonic()
    try:
        action()
        page.wait_for_timeout(max(0, started + seconds - time.monotonic()) * 1000)
    finally:
        page.remove_listener("request", on_request)
        page.remove_listener("websocket", on_websocket)
    return [kind for at, kind in seen if at < started + seconds]
