"""``python -m codepilot_spawner.preview``: the preview gateway, run by the hub as a service.

Two listeners in one process: the previews themselves (``<label>.<domain>``, on
``ip:port``, straight from the browser) and the service's pages on the hub's origin
(``JUPYTERHUB_SERVICE_URL``, behind the hub's proxy). It runs as the hub's user, which
on one machine as root may enter the network namespaces of user servers.
"""

import asyncio
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlparse

import uvloop
from aiohttp import web
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web as tornado_web
from traitlets import CaselessStrEnum, Float, Int, List, Unicode, default, validate
from traitlets.config import Application

from ..servicelife import until_stopped
from .access import SHARE_LEVELS
from .gateway import PreviewGateway
from .hosts import PreviewDomain
from .servers import ServerDirectory
from .sessions import SessionBook, ShareBook
from .signin import ShareHandler, SignInHandler


class PreviewGatewayApp(Application):
    """Serves every user server's preview on an origin of its own."""

    name = "codepilot-preview"
    description = __doc__

    domain = Unicode(
        "preview.localhost",
        help="""Domain under which each preview gets a host of its own,
        ``<label>.<domain>``. Browsers resolve ``*.localhost`` to this machine; a
        deployment served to a network needs a wildcard DNS record (and, with https, a
        wildcard certificate) for ``*.<domain>``, best on a registrable domain of its own.""",
    ).tag(config=True)

    scheme = CaselessStrEnum(
        ["http", "https"],
        "http",
        help="Scheme of preview URLs (https when TLS ends in front of the gateway).",
    ).tag(config=True)

    url_port = Int(
        -1,
        help="""Port written in preview URLs; 0 leaves it out (a proxy on 80/443 in front);
        -1 (default) means the port the gateway listens on.""",
    ).tag(config=True)

    ip = Unicode("127.0.0.1", help="Address the previews are served on.").tag(config=True)

    port = Int(8002, help="Port the previews are served on.").tag(config=True)

    hub_url = Unicode(
        help="""Public URL of the hub (``http://127.0.0.1:8000``), where viewers sign in.""",
    ).tag(config=True)

    @default("hub_url")
    def _default_hub_url(self):
        return os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "http://127.0.0.1:8000")

    share_levels = List(
        Unicode(),
        default_value=list(SHARE_LEVELS),
        help="""Share levels an owner may choose: ``owner`` (the default of every preview:
        the owner and those the hub grants ``access:servers`` on the server),
        ``authenticated`` (anyone logged in to this hub), ``public`` (anyone with the
        link).""",
    ).tag(config=True)

    @validate("share_levels")
    def _valid_levels(self, proposal):
        levels = proposal["value"]
        unknown = set(levels) - set(SHARE_LEVELS)
        if unknown or "owner" not in levels:
            raise ValueError(f"share_levels must include 'owner' and be among {SHARE_LEVELS}")
        return levels

    session_ttl = Float(
        8 * 3600, help="Seconds a viewer stays signed in to a preview (while it runs)."
    ).tag(config=True)

    recheck_interval = Float(
        60,
        help="""Seconds after which a signed-in viewer's access is checked at the hub again
        (a removed role or revoked token ends access within this time).""",
    ).tag(config=True)

    poll_interval = Float(
        2, help="Seconds between two reads of the hub's list of running servers."
    ).tag(config=True)

    state_file = Unicode(
        "",
        help="File that keeps share levels across restarts of the hub; empty: memory only.",
    ).tag(config=True)

    def preview_domain(self) -> PreviewDomain:
        url_port = self.port if self.url_port < 0 else self.url_port
        return PreviewDomain(self.domain, self.scheme, url_port)

    async def make_gateway(self, hub_auth: HubOAuth) -> PreviewGateway:
        directory = ServerDirectory(
            api_url=hub_auth.api_url,
            api_token=hub_auth.api_token,
            interval=self.poll_interval,
            log=self.log,
        )
        login_url = url_path_join(
            self.hub_url, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/"), "login"
        )
        return PreviewGateway(
            domain=self.preview_domain(),
            directory=directory,
            sessions=SessionBook(self.session_ttl),
            # Reads the kept share levels: off the event loop, as every file access here.
            shares=await asyncio.to_thread(
                ShareBook,
                Path(self.state_file) if self.state_file else None,
                tuple(self.share_levels),
                self.log,
            ),
            secret=secrets.token_bytes(32),
            login_url=login_url,
            hub_auth=hub_auth,
            recheck_interval=self.recheck_interval,
            log=self.log,
        )

    def hub_origin_app(self, gateway: PreviewGateway) -> tornado_web.Application:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        return tornado_web.Application(
            [
                (url_path_join(prefix, "login"), SignInHandler, {"gateway": gateway}),
                (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
                (
                    url_path_join(prefix, r"api/shares/([^/]+)/([^/]*)"),
                    ShareHandler,
                    {"gateway": gateway},
                ),
            ],
            cookie_secret=secrets.token_bytes(32),
            xsrf_cookies=False,
        )

    async def serve(self) -> None:
        hub_auth = HubOAuth(cache_max_age=int(self.recheck_interval), parent=self)
        gateway = await self.make_gateway(hub_auth)
        service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8083"))
        self.hub_origin_app(gateway).listen(service_url.port, service_url.hostname)

        runner = web.ServerRunner(web.Server(gateway.handle), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.ip, self.port, backlog=1024).start()
        self.log.info(
            "Code Pilot previews at %s (for example %s), sign-in at %s",
            f"{self.ip}:{self.port}",
            gateway.domain.origin("<label>"),
            gateway.login_url,
        )
        poller = asyncio.create_task(self._keep_current(gateway))
        await until_stopped(self.log, "Preview gateway")
        poller.cancel()
        await runner.cleanup()
        await gateway.close()

    activity_interval = Float(
        10,
        help="Seconds between two reports of preview use to the hub (idle culling reads it).",
    ).tag(config=True)

    async def _keep_current(self, gateway: PreviewGateway) -> None:
        """Follow the hub's servers; forget what belongs to servers that stopped."""
        directory = gateway.directory
        reported_at = 0.0
        while True:
            if gateway.activity and time.monotonic() - reported_at >= self.activity_interval:
                activity, gateway.activity = gateway.activity, {}
                reported_at = time.monotonic()
                await directory.report_activity(activity)
            await directory.refresh()
            gateway.sessions.prune(directory.targets)
            await gateway.shares.prune(directory.targets)
            await gateway.close_stopped(directory.targets)
            await asyncio.sleep(directory.interval)

    def start(self):
        # libuv's loop carries the data path at about twice the requests of asyncio's.
        uvloop.run(self.serve())


main = PreviewGatewayApp.launch_instance
