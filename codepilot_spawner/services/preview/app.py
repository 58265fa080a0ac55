"""``python -m codepilot_spawner.services.preview``: the preview gateway, a hub service.

Two listeners in one process: the previews themselves (``<label>.<domain>``, on
``ip:port``, straight from the browser) and the service's pages on the hub's origin
(``JUPYTERHUB_SERVICE_URL``, behind the hub's proxy). On one machine the hub runs it,
as the hub's user, which as root may enter the network namespaces of user servers; on
Kubernetes it is a Deployment of its own, as many replicas as asked, which share its
signing key (a Secret) and keep share levels at the hub.
"""

import asyncio
import logging
import os
import secrets
import ssl
import time
from pathlib import Path
from urllib.parse import urlparse

import uvloop
from aiohttp import web
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web as tornado_web
from tornado.httpserver import HTTPServer
from traitlets import Bool, CaselessStrEnum, Float, Int, List, Unicode, default, validate
from traitlets.config import Application

from ..servicelife import until_stopped
from ..supervise import inherited_sockets
from .access import SHARE_LEVELS
from .gateway import PreviewGateway
from .hosts import PreviewDomain
from .pace import DEFAULT_BURST, DEFAULT_RATE, MAX_WAIT_S, PreviewPace
from .servers import ServerDirectory
from .sessions import HubGroupShares, KeptFile, SessionBook, ShareBook, derived_key
from .signin import HealthHandler, ShareHandler, SignInHandler


class PreviewGatewayApp(Application):
    """Serves every user server's preview on an origin of its own."""

    name = "codepilot-preview"
    description = __doc__

    @default("log_level")
    def _info(self):
        return logging.INFO  # its start and its warnings belong in its log

    @default("log_format")
    def _format(self):
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s"

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

    ip = Unicode("127.0.0.1", help="Address the previews are served on; empty: every address.").tag(
        config=True
    )

    ssl_cert = Unicode(
        "",
        help="""Certificate (PEM, with its chain) the previews are served with over https;
        it must cover ``*.<domain>``. Empty: plain http (or TLS ends in front).""",
    ).tag(config=True)

    ssl_key = Unicode("", help="Private key (PEM) of ``ssl_cert``.").tag(config=True)

    port = Int(8002, help="Port the previews are served on.").tag(config=True)

    hub_url = Unicode(
        help="""Public URL of the hub (``http://localhost:8000``), where viewers sign in.""",
    ).tag(config=True)

    @default("hub_url")
    def _default_hub_url(self):
        return os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "http://localhost:8000")

    public_url = Unicode(
        help="""Public URL of this service, whose ``login`` page viewers sign in at: on a
        host of its own when the hub has subdomains. Default: the URL the hub gives it
        (``JUPYTERHUB_PUBLIC_URL``), else ``hub_url`` with the service's prefix.""",
    ).tag(config=True)

    @default("public_url")
    def _default_public_url(self):
        return os.environ.get("JUPYTERHUB_PUBLIC_URL") or url_path_join(
            self.hub_url, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        )

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
        2,
        help="""Seconds between two reads of the hub's list of running servers, in a
        small class; a listing that takes the hub long is spaced further, so listings
        cost it at most 2% of its time (up to `max_poll_interval`).""",
    ).tag(config=True)

    max_poll_interval = Float(
        30,
        help="""Longest wait between two reads of the hub's list of running servers. A new
        server's host, and an app that stopped answering, are looked up at once anyway.""",
    ).tag(config=True)

    state_dir = Unicode(
        "",
        help="""Folder (made private to the gateway) that keeps what outlives one run of
        it: share levels, viewers' sessions and the key that signs tickets and cookies,
        so a restarted gateway or hub keeps viewers signed in. Empty: memory only.""",
    ).tag(config=True)

    signing_key_file = Unicode(
        "",
        help="""File holding the key that signs tickets and cookies and seals sessions (32
        bytes or more, as a mounted Secret gives it): every gateway given the same file
        accepts what any of them issued. Empty: the state folder's ``signing-key``, made
        there the first time.""",
    ).tag(config=True)

    hub_origin_ip = Unicode(
        "",
        help="""Address the hub-origin listener (sign-in, share API) binds; ``*``: every
        address, of either family. Empty: the host of ``JUPYTERHUB_SERVICE_URL``, where
        the hub reaches it; set it where that URL names a Service in front of the
        gateway, not an address of its own.""",
    ).tag(config=True)

    shares_group = Unicode(
        "",
        help="""Hub group whose properties keep the share levels (the gateway needs
        ``groups!group=<name>``), so several gateways serving the same previews read the
        same levels and the hub's database keeps them. Empty: the state folder's
        ``shares.json``.""",
    ).tag(config=True)

    bind_sign_in = Bool(
        False,
        help="""Bind each sign-in link to the browser it began in (a cookie of the
        preview's origin, sent only to the end of sign-in), so a link that leaks is of no
        use elsewhere. Set it where several gateways serve the same previews: each knows
        only the links spent at it.""",
    ).tag(config=True)

    idle_timeout = Float(
        30,
        help="""Seconds a connection may stay idle, or take to send a request's headers,
        before the gateway closes it (a request in progress, such as a websocket, is
        not idle).""",
    ).tag(config=True)

    preview_rate = Float(
        DEFAULT_RATE,
        help=f"""Requests a second the gateway forwards to one preview, past its burst:
        the rest wait their turn (429 when it would come more than {MAX_WAIT_S:g} s later). A script
        that hammers a preview then costs the gateway, which serves the whole class,
        little. 0: no limit.""",
    ).tag(config=True)

    preview_burst = Int(
        DEFAULT_BURST,
        help="""Requests a preview gets at once before ``preview_rate`` paces it: a page
        load, even a dev server's thousand modules, never waits.""",
    ).tag(config=True)

    def kept_file(self, name: str) -> KeptFile:
        return KeptFile(Path(self.state_dir) / name if self.state_dir else None, self.log)

    def preview_domain(self) -> PreviewDomain:
        url_port = self.port if self.url_port < 0 else self.url_port
        return PreviewDomain(self.domain, self.scheme, url_port)

    def shares_store(self, hub_auth: HubOAuth) -> KeptFile | HubGroupShares:
        if self.shares_group:
            return HubGroupShares(hub_auth.api_url, hub_auth.api_token, self.shares_group, self.log)
        return self.kept_file("shares.json")

    async def make_gateway(self, hub_auth: HubOAuth, signing_key: bytes) -> PreviewGateway:
        directory = ServerDirectory(
            api_url=hub_auth.api_url,
            api_token=hub_auth.api_token,
            interval=self.poll_interval,
            max_interval=self.max_poll_interval,
            log=self.log,
        )
        login_url = url_path_join(self.public_url, "login")
        shares = await asyncio.to_thread(
            ShareBook, self.shares_store(hub_auth), tuple(self.share_levels)
        )
        await shares.refresh()
        return PreviewGateway(
            domain=self.preview_domain(),
            directory=directory,
            # Read from the state folder off the event loop, as every file access here.
            sessions=await asyncio.to_thread(
                SessionBook, self.session_ttl, self.kept_file("sessions.json"), key=signing_key
            ),
            shares=shares,
            secret=signing_key,
            login_url=login_url,
            hub_auth=hub_auth,
            recheck_interval=self.recheck_interval,
            log=self.log,
            bind_sign_in=self.bind_sign_in,
            pace=PreviewPace(self.preview_rate, self.preview_burst),
        )

    def hub_origin_app(
        self, gateway: PreviewGateway, signing_key: bytes
    ) -> tornado_web.Application:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        return tornado_web.Application(
            [
                (url_path_join(prefix, "login"), SignInHandler, {"gateway": gateway}),
                (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
                (url_path_join(prefix, "health"), HealthHandler),
                (
                    url_path_join(prefix, r"api/shares/([^/]+)/([^/]*)"),
                    ShareHandler,
                    {"gateway": gateway},
                ),
            ],
            cookie_secret=derived_key(signing_key, "hub-origin-cookies"),
            xsrf_cookies=False,
            # HubOAuth's own XSRF cookie: Secure when viewers sign in over https.
            xsrf_cookie_kwargs={"secure": True} if self.public_url.startswith("https:") else {},
        )

    def signing_key(self) -> bytes:
        if self.signing_key_file:
            return key_from_file(Path(self.signing_key_file))
        return kept_key(Path(self.state_dir) if self.state_dir else None)

    def hub_origin_address(self) -> tuple[int, str]:
        """(port, address) the hub-origin listener binds."""
        service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8083"))
        if self.hub_origin_ip == "*":
            return service_url.port, ""
        return service_url.port, self.hub_origin_ip or service_url.hostname

    async def serve(self) -> None:
        signing_key = await asyncio.to_thread(self.signing_key)
        hub_auth = HubOAuth(cache_max_age=int(self.recheck_interval), parent=self)
        gateway = await self.make_gateway(hub_auth, signing_key)
        # Supervised (python -m codepilot_spawner.services.supervise), the sockets are inherited.
        previews_socket, hub_origin_socket = inherited_sockets() or (None, None)
        hub_origin = HTTPServer(
            self.hub_origin_app(gateway, signing_key),
            idle_connection_timeout=self.idle_timeout,
        )
        if hub_origin_socket is not None:
            hub_origin.add_socket(hub_origin_socket)
        else:
            hub_origin.listen(*self.hub_origin_address())

        # Know the running servers before the first request: after a restart, browsers
        # waiting in the backlog are answered at once, not after an on-demand listing.
        await gateway.directory.refresh()
        runner = web.ServerRunner(previews_server(gateway.handle, self.idle_timeout))
        await runner.setup()
        tls = server_tls(self.ssl_cert, self.ssl_key)
        if previews_socket is not None:
            await web.SockSite(runner, previews_socket, ssl_context=tls).start()
        else:
            await web.TCPSite(runner, self.ip, self.port, backlog=1024, ssl_context=tls).start()
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
            await gateway.follow_hub()
            await asyncio.sleep(directory.next_interval)

    def start(self):
        # libuv's loop carries the data path at about twice the requests of asyncio's.
        uvloop.run(self.serve())


def previews_server(handler, idle_timeout: float) -> web.Server:
    """The previews' HTTP server: a connection idle, or slow to send its headers, for
    ``idle_timeout`` seconds is closed (aiohttp's keep-alive timer runs until a
    request's headers are complete)."""
    return web.Server(handler, keepalive_timeout=idle_timeout, access_log=None)


def server_tls(cert: str, key: str) -> ssl.SSLContext | None:
    """The previews' TLS, or None for plain http: TLS 1.2 and up, as the hub's proxy
    (Node.js) serves by default."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key or None)
    return context


MIN_KEY_BYTES = 32


def key_from_file(path: Path) -> bytes:
    """The signing key in ``path`` (a mounted Secret), which must hold 32 bytes or more."""
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        raise SystemExit(f"cannot read the signing key {path}: {error.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise SystemExit(f"{path} holds no key (under {MIN_KEY_BYTES} bytes)")
    return key


def kept_key(state_dir: Path | None) -> bytes:
    """The gateway's signing key: read from ``<state_dir>/signing-key``, made there (0600,
    in a folder private to the gateway) the first time; a new one each run without a
    state folder."""
    if state_dir is None:
        return secrets.token_bytes(32)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    path = state_dir / "signing-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) >= MIN_KEY_BYTES:
            return key
        raise SystemExit(
            f"{path} holds no key (under 32 bytes): remove it and start again"
        ) from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


main = PreviewGatewayApp.launch_instance
