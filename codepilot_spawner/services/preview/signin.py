"""The gateway's pages on the hub's origin: where viewers sign in, and the share API.

Served under the hub service's prefix (``/services/codepilot-preview/``):

- ``login?preview=<label>&next=<path>[&browser=<digest>]``: JupyterHub OAuth tells who
  the viewer is and what their token may do; the gateway checks the preview's share
  level against it and sends the browser to the preview's origin with a single-use
  ticket (bound to the browser the sign-in began in, when ``browser`` is given). The
  viewer's hub cookies never leave the hub's origin.
- ``health``: whether the gateway serves, for a readiness probe.
- ``api/shares/<user>/<server>``: ``GET`` the preview's URL and share level, ``PUT``
  ``{"share": level}``; only the server's owner (by their API token, as the user server
  sends it) or an admin.
"""

import json

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web
from tornado.escape import url_unescape

from ..errors import error_body
from . import pages
from .access import SHARE_LEVELS, grants_server_access


class GatewayHandler(web.RequestHandler):
    def initialize(self, gateway):
        self.gateway = gateway

    def page(self, status: int, title: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(pages.message(title, text))


class SignInHandler(HubOAuthenticated, GatewayHandler):
    """``GET login``: who the viewer is, whether they may, then on to the preview."""

    async def get(self):
        model = await self.hub_auth.get_user(self, sync=False)
        if model is None:
            self.redirect(self.get_login_url())  # JupyterHub OAuth, then back here
            return
        target = await self.gateway.directory.lookup(self.get_argument("preview", ""))
        if target is None:
            self.page(404, "This preview is not running", "Its server is stopped.")
            return
        scopes = model.get("scopes", [])
        level = self.gateway.shares.level(target)
        if level == "owner" and not grants_server_access(
            scopes, target.user, target.server, target.groups
        ):
            self.page(
                403,
                "No access to this preview",
                f"{model['name']} may not open this preview: it is shared with its owner "
                "and those who may open their server only.",
            )
            return
        token = self.hub_auth.get_token(self)
        session_id = await self.gateway.sessions.open(model["name"], token, scopes, target)
        self.set_header("Referrer-Policy", "no-referrer")
        ticket_url = self.gateway.ticket_for(
            session_id, target, self.get_argument("next", "/"), self.get_argument("browser", "")
        )
        self.redirect(ticket_url)


class HealthHandler(web.RequestHandler):
    """``GET health``: the gateway serves (its listeners are up and it asked the hub for
    its servers once); Kubernetes' readiness probe reads it."""

    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish({"status": "ok"})


class ShareHandler(GatewayHandler):
    """``GET``/``PUT api/shares/<user>/<server>``, with an API token (no cookies)."""

    async def prepare(self):
        header = self.request.headers.get("Authorization", "")
        if not header.startswith("token "):
            raise web.HTTPError(401, "a JupyterHub API token is required")
        model = await self.gateway.hub_auth.user_for_token(header[6:].strip(), sync=False)
        if model is None:
            raise web.HTTPError(403, "unknown token")
        self.caller = model

    def check_xsrf_cookie(self):
        pass  # token-only API: no cookie session to forge

    async def _target(self, user: str, server: str):
        user, server = url_unescape(user), url_unescape(server)
        if self.caller.get("kind") != "user" or (
            self.caller["name"] != user and not self.caller.get("admin")
        ):
            raise web.HTTPError(403, "only the server's owner sets its preview's sharing")
        for target in self.gateway.directory.targets.values():
            if (target.user, target.server) == (user, server):
                return target
        await self.gateway.directory.refresh()
        for target in self.gateway.directory.targets.values():
            if (target.user, target.server) == (user, server):
                return target
        raise web.HTTPError(404, "this server is not running")

    def write_model(self, target) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {
                    "url": self.gateway.domain.origin(target.label) + "/",
                    "share": self.gateway.shares.level(target),
                    "allowed": list(self.gateway.shares.allowed),
                }
            )
        )

    async def get(self, user: str, server: str):
        self.write_model(await self._target(user, server))

    async def put(self, user: str, server: str):
        target = await self._target(user, server)
        try:
            level = json.loads(self.request.body or b"{}").get("share")
        except (ValueError, AttributeError):
            raise web.HTTPError(400, 'the body must be JSON: {"share": level}') from None
        if level not in SHARE_LEVELS:
            raise web.HTTPError(400, f"share must be one of {', '.join(SHARE_LEVELS)}")
        try:
            await self.gateway.shares.set_level(target, level)
        except ValueError as error:
            raise web.HTTPError(400, str(error)) from None
        self.gateway.log.info(
            "Preview of %s/%s now shared with: %s", target.user, target.server, level
        )
        self.write_model(target)

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(status_code, kwargs.get("exc_info", (None, None))[1]))
