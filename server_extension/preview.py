"""The live preview, seen from the user server.

The app itself is served on an origin of its own by the hub's preview gateway
(``CODEPILOT_PREVIEW_URL``, ``<label>.<preview domain>``), never on the IDE's origin:
a page on the IDE's origin could act with the rights of whoever views it. So this server
only points there:

- ``<server url>/preview/<path>`` redirects to ``<preview url><path>``, which keeps the
  Preview tile and old links working;
- ``<server url>/codepilot/api/preview`` reads and sets the preview's share level at the
  gateway, with this server's own token (``GET``; ``PUT {"share": level}``);

Nothing here proxies the app: a proxy inside this server (jupyter-server-proxy's
``/proxy/<port>/``) would serve it on the IDE's origin again, with the viewer's cookies.
"""

import contextlib
import json
import os
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .upstream import hub_model

PREVIEW_API_PATH = "codepilot/api/preview"


class PreviewRedirectHandler(JupyterHandler):
    """``preview/<path>`` -> ``<preview url><path>`` (same query)."""

    def initialize(self, preview_url: str):
        self.preview_url = preview_url

    @web.authenticated
    def get(self, path: str = ""):
        if not self.preview_url:
            raise web.HTTPError(404, "this server has no preview URL (CODEPILOT_PREVIEW_URL)")
        target = self.preview_url.rstrip("/") + "/" + quote(path, safe="/@:+,;=-._~!$&'()*")
        if self.request.query:
            target += "?" + self.request.query
        self.redirect(target)


class PreviewShareHandler(APIHandler):
    """``GET``/``PUT codepilot/api/preview``: the preview's URL and share level.

    The model is the gateway's: ``{"url": ..., "share": "owner" | "authenticated" |
    "public", "allowed": [levels the hub allows]}``. Only this server's owner (or those
    granted access to it) may read it; only the owner, or an admin, may change it. The
    gateway checks this server's token again.
    """

    auth_resource = "servers"

    def initialize(self, shares_url: str, preview_url: str):
        self.shares_url = shares_url
        self.preview_url = preview_url

    async def _gateway(self, method: str, body: bytes | None = None) -> None:
        if not self.shares_url:
            self.finish({"url": self.preview_url, "share": "owner", "allowed": ["owner"]})
            return
        request = HTTPRequest(
            self.shares_url,
            method=method,
            body=body,
            headers={
                "Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}",
                "Content-Type": "application/json",
            },
            request_timeout=10,
        )
        try:
            reply = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            message = "the preview gateway refused the request"
            if error.response is not None and error.response.body:
                with contextlib.suppress(ValueError):
                    message = json.loads(error.response.body).get("message", message)
            raise web.HTTPError(error.code if error.code < 500 else 502, message) from None
        except OSError as error:
            raise web.HTTPError(502, f"the preview gateway is unreachable: {error}") from None
        self.set_header("Content-Type", "application/json")
        self.finish(reply.body)

    @web.authenticated
    @authorized
    async def get(self):
        await self._gateway("GET")

    @web.authenticated
    @authorized
    async def put(self):
        # Opening a server (a teacher's access:servers) is not owning its preview: who
        # may see the app is for its owner to say, or an admin.
        viewer = hub_model(self.current_user)
        if viewer.get("name") != os.environ.get("JUPYTERHUB_USER") and not viewer.get("admin"):
            raise web.HTTPError(403, "only the owner of this server or an admin may share it")
        try:
            level = json.loads(self.request.body or b"{}")["share"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, 'the body must be JSON: {"share": level}') from None
        await self._gateway("PUT", json.dumps({"share": level}).encode())


def shares_url(api_url: str) -> str:
    """The gateway's share endpoint for this server (from the hub's own variables)."""
    if not api_url:
        return ""
    user = quote(os.environ.get("JUPYTERHUB_USER", ""), safe="")
    server = quote(os.environ.get("JUPYTERHUB_SERVER_NAME", ""), safe="")
    return f"{api_url.rstrip('/')}/api/shares/{user}/{server}"


def preview_handlers(preview_url: str, preview_api_url: str) -> list[tuple]:
    """Routes for the extension app (it prefixes base_url)."""
    return [
        (r"preview/?(.*)", PreviewRedirectHandler, {"preview_url": preview_url}),
        (
            PREVIEW_API_PATH,
            PreviewShareHandler,
            {"shares_url": shares_url(preview_api_url), "preview_url": preview_url},
        ),
    ]
