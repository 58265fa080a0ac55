"""The preview gateway's data path: every preview origin, one hop from browser to app.

A request for ``<label>.<preview domain>`` is checked locally (the preview's share
level, then its own signed session cookie: an HMAC, counted only where
``requestorigin.cookie_reading`` says; the hub is asked again once a session's last check
is ``recheck_interval`` old, and the request waits) and forwarded over a pooled
keep-alive connection to the app of that server. Before it leaves, everything that could
identify the viewer is taken out of it (``hopheaders``).
"""

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from codepilot_contracts.porthosts import split_port_label

from . import pages
from .appconnection import app_connector, make_connector
from .apphttp import AppAnswerBroken, AppPool, AppUnreachable, request_head
from .hopheaders import (
    BROWSER_COOKIE,
    SESSION_COOKIE,
    session_cookie_values,
    upstream_headers,
    viewer_headers,
)
from .hosts import PreviewDomain
from .pace import PreviewPace
from .ports import NamespacePorts
from .requestorigin import (
    COOKIE_AFTER_BOUNCE,
    COOKIE_REFUSED,
    cookie_reading,
    is_top_level_get,
    is_websocket,
)
from .servers import PreviewTarget, ServerDirectory
from .sessions import SessionBook, ShareBook, ViewerSession
from .tokenchecks import TokenChecks, token_session
from .tokens import CheckedValues, InvalidToken, sign, verify

# The one path of a preview origin the gateway keeps for itself: the end of sign-in.
SIGN_IN_PATH = "/.codepilot-preview/sign-in"
WHOLE_BODY_LIMIT = 1 << 20  # answers up to 1 MiB are read whole, larger ones streamed


def browser_digest(browser_id: str) -> str:
    """What the hub's origin sees of a browser's id: enough to match it, not to send it."""
    return hashlib.sha256(browser_id.encode()).hexdigest()[:32]


def safe_next(path: str) -> str:
    """A local path to go back to after sign-in: never another host.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``: ``/\t/evil``
    is ``//evil``, so any control character or backslash there makes it ``/``.
    """
    if not path.startswith("/") or path[1:2] == "\\":
        return "/"
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return "/"
    parsed = urlsplit(path)
    return "/" if parsed.scheme or parsed.netloc or path.startswith("//") else path


# A hot-reload message is a few KB; a bigger one is refused, never buffered.
WEBSOCKET_MESSAGE_LIMIT = 16 * 1024 * 1024
# Methods no app in a browser sends through a preview; CONNECT would name another host.
REFUSED_METHODS = {"CONNECT", "TRACE"}


class PreviewGateway:
    """Serves every preview origin: sign-in, access checks and forwarding."""

    def __init__(
        self,
        domain: PreviewDomain,
        directory: ServerDirectory,
        sessions: SessionBook,
        shares: ShareBook,
        secret: bytes,
        login_url: str,
        hub_auth,
        recheck_interval: float = 60.0,
        log: logging.Logger | None = None,
        bind_sign_in: bool = False,
        pace: PreviewPace | None = None,
    ):
        self.domain = domain
        self.pace = pace or PreviewPace(rate=0, burst=0)  # none: every request at once
        # Where several gateways serve a preview, a spent link is known to one of them
        # only: a link is then of use only in the browser that asked for it.
        self.bind_sign_in = bind_sign_in
        self.directory = directory
        self.sessions = sessions
        # A token the hub answered about counts for as long as a sign-in session between checks.
        self.token_checks = TokenChecks(remember=recheck_interval)
        self.shares = shares
        self.secret = secret
        self.cookies = CheckedValues(secret)
        self.login_url = login_url
        self.hub_auth = hub_auth
        self.recheck_interval = recheck_interval
        self.log = log or logging.getLogger(__name__)
        # Per server start: HTTP pools (by port) and websockets' aiohttp client.
        self._pools: dict[tuple[str, str, int], AppPool] = {}
        self._clients: dict[tuple[str, str], aiohttp.ClientSession] = {}
        self.ports = NamespacePorts(log=self.log)
        # (user, server) -> time of the last request let through, for the hub's culler.
        self.activity: dict[tuple[str, str], float] = {}

    # --- entry ----------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method in REFUSED_METHODS:
            return self._page(405, "Not allowed", f"{request.method} does not pass to a preview.")
        if not request.raw_path.startswith("/"):  # absolute- or authority-form target
            return self._page(400, "Bad request", "A preview takes paths only.")
        label = self.domain.label_of(request.host)
        if label is None:
            return self._page(404, "Not a preview", "There is no preview at this address.")
        target = await self.directory.lookup(label)
        if target is None:
            return self._page(
                404,
                "This preview is not running",
                "The server of this preview is stopped, or this link is wrong.",
            )
        if request.path == SIGN_IN_PATH:
            return await self._finish_sign_in(request, target)
        denied = await self._check_access(request, target)
        if denied is not None:
            return denied
        port = await self._app_port(target)
        if port is None:
            return self._page(
                404,
                "Nothing to preview on this port",
                f"Nothing of this server listens on port {target.port}, or it is a port "
                "of the server's own.",
            )
        if not await self.pace.turn((target.user, target.server)):
            response = self._page(
                429,
                "Too many requests to this preview",
                f"This preview gets {self.pace.rate:g} requests a second, and more are "
                "waiting than it can answer soon. Wait a moment, then reload.",
            )
            response.headers["Retry-After"] = str(round(self.pace.max_wait))
            return response
        self.activity[(target.user, target.server)] = time.time()
        if is_websocket(request):
            return await self._forward_websocket(request, target, port)
        return await self._forward(request, target, port)

    async def _app_port(self, target: PreviewTarget) -> int | None:
        """The server's port this request goes to; None for a port host whose port is not
        previewable. In a namespace the gateway reads, its kernel decides; a Kubernetes
        relay checks the port itself; on the machine's shared loopback only ``PORT``."""
        route = target.route
        if not route.previews_ports:
            return route.app_port  # no port hosts here (``PreviewTarget.for_port``)
        if not route.netns:
            return target.port or route.app_port
        if target.port:
            return target.port if target.port in await self.ports.previewable(route) else None
        return await self.ports.main_port(route)

    # --- access ---------------------------------------------------------------------------

    async def _check_access(self, request, target: PreviewTarget) -> web.StreamResponse | None:
        """None when the request may pass, else the answer it gets instead."""
        level = self.shares.level(target)
        if level == "public":
            return None
        origin = self.domain.origin(target.label)
        session = None
        reading = cookie_reading(request, origin)
        if reading != COOKIE_REFUSED:
            session = self._session_from_cookie(request, target)
            if session is not None and reading == COOKIE_AFTER_BOUNCE:
                return self._bounce(request)
        if session is not None and not await self._still_stands(session):
            session = None  # ended at the hub: as if never signed in
        if session is None and request.headers.get("Authorization", "").startswith("token "):
            token = request.headers["Authorization"][len("token ") :].strip()
            if (model := self.token_checks.accepted_lately(token)) is not None:
                session = token_session(model, token, target)  # no hub call
            elif self.token_checks.refused_lately(token):
                pass  # as refused as a minute ago: no hub call
            elif not self.token_checks.may_ask():
                return self._page(
                    429, "Too many token checks", "Wait a moment, then send the request again."
                )
            else:
                session = await self._session_from_token(token, target)
        if session is None:
            if is_top_level_get(request):
                return self._redirect_to_login(request, target)
            return self._page(
                401,
                "Sign-in needed",
                "Open this preview in a browser tab to sign in, or send "
                "'Authorization: token <JupyterHub API token>'.",
            )
        if level == "owner" and not session.may_open(target):
            return self._page(
                403,
                "No access to this preview",
                f"{session.viewer} may not open this preview: it is shared with its owner "
                "and those who may open their server only.",
            )
        return None

    def _session_from_cookie(self, request, target: PreviewTarget) -> ViewerSession | None:
        now = time.time()
        for value in session_cookie_values(request.headers.get("Cookie", "")):
            try:
                claims = self.cookies.verify(
                    "session", value, now, label=target.label, start=target.start
                )
            except (InvalidToken, ValueError):
                continue
            session = self.sessions.get(claims.get("sid", ""), target)
            if session is not None:
                return session
        return None

    async def _session_from_token(self, token: str, target) -> ViewerSession | None:
        # A user's token, or a service's (a script with ``access:servers``): its scopes
        # say which previews it may open.
        model = await self.hub_auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") not in ("user", "service"):
            self.token_checks.refused(token)
            return None
        self.token_checks.accepted(token, model)
        return token_session(model, token, target)

    async def _still_stands(self, session: ViewerSession) -> bool:
        """Whether a session may still be used, asked of the hub first when its last check
        is older than ``recheck_interval`` (and always for one this gateway never checked:
        a sealed session from a cookie). Waited for, so a viewer whose access ended is
        refused rather than let through while the check runs; requests arriving meanwhile
        wait for the same check."""
        if time.monotonic() - session.checked_at > self.recheck_interval:
            if session.checking is None:
                session.checking = asyncio.ensure_future(self._recheck(session))
            await asyncio.shield(session.checking)
        return session.expires >= time.time()

    async def _recheck(self, session: ViewerSession) -> None:
        """Ask the hub again what the viewer's token may do; end the session if nothing."""
        try:
            model = await self.hub_auth.user_for_token(session.token, use_cache=False, sync=False)
        except Exception as error:  # the hub is down: keep what we knew, retry later
            self.log.warning("Preview gateway: could not recheck %s: %s", session.viewer, error)
            model = True
        if model is None:
            session.expires = 0
        elif isinstance(model, dict):
            session.scopes = frozenset(model.get("scopes", ()))
        session.checked_at = time.monotonic()
        session.checking = None

    def _bounce(self, request) -> web.Response:
        response = web.Response(
            status=200, body=pages.bounce(safe_next(request.path_qs)), content_type="text/html"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "same-origin"  # the next request's proof
        response.headers["Vary"] = "Referer, Origin, Sec-Fetch-Site"
        return response

    def _redirect_to_login(self, request, target: PreviewTarget) -> web.Response:
        query = {"preview": target.label, "next": safe_next(request.path_qs)}
        browser_id = None
        if self.bind_sign_in:
            sent = session_cookie_values(request.headers.get("Cookie", ""), BROWSER_COOKIE)
            browser_id = sent[0] if sent else secrets.token_urlsafe(24)
            query["browser"] = browser_digest(browser_id)
        response = self._redirect(f"{self.login_url}?{urlencode(query)}")
        if browser_id:
            response.set_cookie(
                BROWSER_COOKIE,
                browser_id,
                httponly=True,
                samesite="Lax",  # sent on the hub's redirect back, a top-level navigation
                secure=self.domain.scheme == "https",
                path=SIGN_IN_PATH,
                max_age=24 * 3600,
            )
        return response

    def ticket_for(
        self, session_id: str, target: PreviewTarget, path: str, browser: str = ""
    ) -> str:
        """The URL that completes a viewer's sign-in on the preview's own origin; with
        ``browser`` (a ``browser_digest``), in that browser only."""
        ticket = sign(
            self.secret,
            "ticket",
            {
                "sid": session_id,
                "label": target.label,
                "start": target.start,
                "nonce": secrets.token_urlsafe(12),
                "exp": time.time() + 60,
                "browser": browser,
            },
        )
        query = urlencode({"ticket": ticket, "next": safe_next(path)})
        return f"{self.domain.origin(target.label)}{SIGN_IN_PATH}?{query}"

    async def _finish_sign_in(self, request, target: PreviewTarget) -> web.Response:
        now = time.time()
        try:
            claims = verify(
                self.secret,
                "ticket",
                request.query.get("ticket", ""),
                now,
                label=target.label,
                start=target.start,
            )
        except (InvalidToken, ValueError) as error:
            return self._page(403, "Sign-in link not valid", f"This sign-in link is {error}.")
        if self.bind_sign_in and not self._from_its_browser(request, claims):
            return self._page(
                403,
                "Sign-in link not valid",
                "This sign-in link belongs to another browser: open the preview again.",
            )
        if not await self.sessions.spend_nonce(claims["nonce"], claims["exp"]):
            return self._page(403, "Sign-in link not valid", "This sign-in link was used already.")
        session = self.sessions.get(claims["sid"], target)
        if session is None:
            return self._page(403, "Sign-in link not valid", "This sign-in has ended.")
        cookie = sign(
            self.secret,
            "session",
            {
                "sid": claims["sid"],
                "label": target.label,
                "start": target.start,
                "exp": session.expires,
            },
        )
        response = self._redirect(safe_next(request.query.get("next", "/")))
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            httponly=True,
            samesite="Lax",
            secure=self.domain.scheme == "https",
            path="/",
            max_age=int(session.expires - now),
        )
        return response

    @staticmethod
    def _from_its_browser(request, claims: dict) -> bool:
        sent = session_cookie_values(request.headers.get("Cookie", ""), BROWSER_COOKIE)
        wanted = claims.get("browser") or ""
        return bool(wanted) and any(
            hmac.compare_digest(browser_digest(value), wanted) for value in sent
        )

    # --- forwarding -----------------------------------------------------------------------

    def _client(self, target: PreviewTarget) -> aiohttp.ClientSession:
        key = (target.label, target.start)
        client = self._clients.get(key)
        if client is None:
            route = target.route
            client = self._clients[key] = aiohttp.ClientSession(
                connector=make_connector(route.netns, preamble=route.preamble_for(target.port)),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=None),
            )
        return client

    async def follow_hub(self) -> None:
        """Read the hub's servers again, and forget the sign-ins, share levels and pools of
        those that stopped; only from a listing the hub gave (one that failed, such as the
        first after a restart while the hub is busy, stopped no server)."""
        await self.directory.refresh()
        try:
            if self.directory.current_listing:
                await self.sessions.prune(self.directory.targets)
                await self.shares.prune(self.directory.targets)
                await self.close_stopped(self.directory.targets)
            else:
                await self.shares.refresh()
        except Exception as error:  # a store that did not answer: the next poll tries again
            self.log.warning("Preview gateway: could not keep current: %s", error)

    async def close_stopped(self, live_targets: dict[str, PreviewTarget]) -> None:
        """Close the pools of servers that stopped or restarted."""
        live = {(t.label, t.start) for t in live_targets.values()}
        for key in [key for key in self._clients if split_key(key) not in live]:
            await self._clients.pop(key).close()
        for key in [key for key in self._pools if split_key(key[:2]) not in live]:
            self._pools.pop(key).close()
        self.ports.keep_only({(t.route.netns, t.start) for t in live_targets.values()})

    async def close(self) -> None:
        await self.close_stopped({})

    def _upstream_url(self, request, target: PreviewTarget, port: int) -> URL:
        """The app's URL: host and port from the target (the relay's, or the server's
        ``port``), only the path from the request."""
        path, _, query = request.raw_path.partition("?")
        host = target.route.host
        return URL.build(
            scheme="http",
            host=f"[{host}]" if ":" in host else host,  # IPv6 pods
            port=target.route.relay_port or port,
            path=path,
            query_string=query,
            encoded=True,
        )

    def _pool(self, target: PreviewTarget, port: int) -> AppPool:
        key = (target.label, target.start, port)
        pool = self._pools.get(key)
        if pool is None:
            route = target.route
            pool = self._pools[key] = AppPool(
                app_connector(
                    route.netns,
                    route.host,
                    route.relay_port or port,
                    preamble=route.preamble_for(target.port),
                )
            )
        return pool

    async def _forward(self, request: web.BaseRequest, target: PreviewTarget, port: int):
        headers = upstream_headers(request, self.domain.scheme)
        body, chunked = None, False
        if request.body_exists:
            body = request.content.iter_any()
            # A body without a length came chunked: it leaves chunked again.
            chunked = "Content-Length" not in request.headers
            if chunked:
                headers.append(("Transfer-Encoding", "chunked"))
        head = request_head(request.method, request.raw_path, headers)
        head_only = request.method == "HEAD"
        try:
            exchange = await self._pool(target, port).request(head, body, chunked, head_only)
        except AppUnreachable as error:
            self.log.debug("Preview %s: app unreachable: %s", target.label, error)
            return await self._unreachable(target, port)
        except AppAnswerBroken as error:
            return self._broken(target, error)
        async with exchange as answer:
            response_headers = viewer_headers(answer.headers)
            if head_only:
                return web.Response(status=answer.status, headers=response_headers)
            length = answer.content_length
            # A chunked answer that already arrived whole (Node's ``writeHead`` then
            # ``end``) goes out in one write too; one still coming (a stream,
            # server-sent events) is passed on as it comes.
            if answer.complete or (length is not None and length <= WHOLE_BODY_LIMIT):
                try:
                    body = await answer.read()
                except AppAnswerBroken as error:
                    return self._broken(target, error)
                response_headers.popall("Content-Length", None)
                return web.Response(status=answer.status, headers=response_headers, body=body)
            response = web.StreamResponse(status=answer.status, headers=response_headers)
            await response.prepare(request)
            try:
                async for data in answer.chunks():
                    await response.write(data)
            except AppAnswerBroken as error:
                # Never end a cut answer as if whole: the viewer's connection ends too.
                self.log.debug("Preview %s: %s", target.label, error)
                if request.transport is not None:
                    request.transport.abort()
                return response
            except ConnectionError:  # the viewer left: the app's connection is closed
                return response
            await response.write_eof()
            return response

    def _broken(self, target: PreviewTarget, error: Exception) -> web.Response:
        self.log.debug("Preview %s: %s", target.label, error)
        return self._page(502, "The app's answer broke off", f"{error}. Reload to try again.")

    async def _forward_websocket(self, request: web.BaseRequest, target: PreviewTarget, port: int):
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        ]
        protocols = [p for p in protocols if p]
        headers = [
            (name, value)
            for name, value in upstream_headers(request, self.domain.scheme)
            if not name.lower().startswith("sec-websocket-")  # aiohttp's handshake sets them
        ]
        try:
            upstream = await self._client(target).ws_connect(
                self._upstream_url(request, target, port),
                headers=headers,
                protocols=protocols,
                autoping=False,
                max_msg_size=WEBSOCKET_MESSAGE_LIMIT,
                compress=0,  # no permessage-deflate: nothing to inflate without bound
            )
        except (aiohttp.ClientError, OSError) as error:
            self.log.debug("Preview %s: websocket refused: %s", target.label, error)
            return await self._unreachable(target, port)
        downstream = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (),
            autoping=False,
            max_msg_size=WEBSOCKET_MESSAGE_LIMIT,  # larger: closed with 1009
            compress=False,
        )
        await downstream.prepare(request)
        await asyncio.gather(_pump(upstream, downstream), _pump(downstream, upstream))
        return downstream

    # --- answers --------------------------------------------------------------------------

    async def _unreachable(self, target: PreviewTarget, port: int) -> web.Response:
        """The app did not answer: its server may have stopped since the last poll."""
        if await self.directory.current(target.label) != target:
            return self._page(
                404,
                "This preview is not running",
                "The server of this preview is stopped, or this link is wrong.",
            )
        return self._html(502, pages.app_down(port))

    def _page(self, status: int, title: str, text: str) -> web.Response:
        return self._html(status, pages.message(title, text))

    @staticmethod
    def _html(status: int, body: bytes) -> web.Response:
        return web.Response(
            status=status,
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    @staticmethod
    def _redirect(location: str) -> web.Response:
        return web.Response(
            status=302,
            headers={
                "Location": location,
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )


def split_key(client_key: tuple[str, str]) -> tuple[str, str]:
    """A pool's (label, start) as its server's: a port host's pool ends with its server."""
    label, start = client_key
    return split_port_label(label)[1], start


async def _pump(source, sink) -> None:
    """Copy websocket messages one way until either side closes."""
    try:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.PING:
                await sink.ping(message.data)
            elif message.type == aiohttp.WSMsgType.PONG:
                await sink.pong(message.data)
            else:
                break
    except (aiohttp.ClientError, ConnectionError, RuntimeError):
        pass
    finally:
        # The other side learns why: a message too big (1009) ends both.
        await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)
