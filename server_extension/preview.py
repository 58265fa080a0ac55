"""The live preview: ``<server url>/preview/`` proxies to the user's app.

The route strips its prefix, so ``python -m http.server $PORT``, Flask and Express work
as they are. jupyter-server-proxy's ``/proxy/absolute/<port>/`` keeps it, which is what
``CODEPILOT_PREVIEW_URL`` points at for dev servers that take a base path (Vite's
``base``, create-react-app's ``PUBLIC_URL``, Next's ``basePath``). Vite redirects ``/``
to its base, so the Preview tile's ``/preview/`` lands such apps on their own URL.
"""

import html
import pathlib
import socket
import warnings
from urllib.parse import urlparse

from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import AddSlashHandler, NamedLocalProxyHandler
from tornado import web
from tornado.simple_httpclient import HTTPStreamClosedError, HTTPTimeoutError

ICON_PATH = pathlib.Path(__file__).parent / "static" / "preview.svg"

# The launcher entry below has no port on purpose (PreviewHandler serves the route), which
# jupyter-server-proxy reports as a misconfiguration at every start.
warnings.filterwarnings(
    "ignore", message="Server proxy preview does not have a command", category=UserWarning
)

# Errors that mean "nothing is serving on the preview port (yet)".
APP_DOWN_ERRORS = (ConnectionError, HTTPStreamClosedError, HTTPTimeoutError, socket.gaierror)

APP_DOWN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Preview: no app running</title>
<meta http-equiv="refresh" content="5">
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#333}}
code{{background:#f2f2f2;padding:.1em .3em;border-radius:3px}}</style></head>
<body><h1>No app is running yet</h1>
<p>Nothing is listening on port {port}. Start your app in a terminal, for example
<code>npm run dev</code>, <code>flask run --port $PORT</code> or
<code>python -m http.server $PORT</code>.</p>
<p>This page reloads by itself every few seconds.</p>
</body></html>
"""


def launcher_entry() -> dict:
    """jupyter-server-proxy entry point: the Preview tile in the JupyterLab launcher.

    It names no port, so jupyter-server-proxy adds no route of its own; PreviewHandler
    serves ``preview/``.
    """
    return {
        "launcher_entry": {
            "title": "Preview",
            "path_info": "preview/",
            "icon_path": str(ICON_PATH),
            # JupyterLab draws these tiles' icons only in the Notebook and Console rows.
            "category": "Notebook",
        },
        "new_browser_tab": True,
    }


class PreviewHandler(NamedLocalProxyHandler):
    """Proxies HTTP and websockets under ``preview/`` to 127.0.0.1:<preview port>.

    Authentication, Origin checks and activity tracking are jupyter-server-proxy's: only
    the server's owner and those granted ``access:servers`` on it get through.
    """

    name = "preview"
    proxy_base = "preview"
    absolute_url = False
    mappath = {}
    rewrite_response = ()
    update_last_activity = True
    exclude_last_activity_patterns = ()
    request_headers_override = {}

    def initialize(self, port: int):
        self.port = port

    async def proxy(self, port, path):
        try:
            return await super().proxy(port, path)
        except APP_DOWN_ERRORS as error:
            self.log.debug("Preview on port %s unavailable: %s", port, error)
            raise web.HTTPError(502, "no app is listening on port %s", port) from None

    def _rewrite_location_header(self, location, host, port, proxied_path):
        # A redirect that already points inside this server (Vite sending `/` to its
        # base) is left alone; jupyter-server-proxy would prefix it a second time.
        path = urlparse(location).path
        if location.startswith("/") and path.startswith(self.base_url):
            return location
        return super()._rewrite_location_header(location, host, port, proxied_path)

    def write_error(self, status_code, **kwargs):
        if status_code != 502:
            return super().write_error(status_code, **kwargs)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(APP_DOWN_PAGE.format(port=html.escape(str(self.port))))


def preview_handlers(port: int) -> list[tuple]:
    """Routes for the extension app (it prefixes base_url)."""
    return [
        (url_path_join("preview", "(.*)"), PreviewHandler, {"port": port}),
        ("preview", AddSlashHandler),
    ]
