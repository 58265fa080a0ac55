"""The preview gateway's pure pieces: host labels, signed values, access rules, headers."""

import asyncio
import logging
import re
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from codepilot_spawner.services.preview.access import SHARE_LEVELS, grants_server_access
from codepilot_spawner.services.preview.app import PreviewGatewayApp, kept_key, previews_server
from codepilot_spawner.services.preview.gateway import PreviewGateway, safe_next
from codepilot_spawner.services.preview.hopheaders import app_cookies, session_cookie_values
from codepilot_spawner.services.preview.hosts import PreviewDomain, preview_label
from codepilot_spawner.services.preview.servers import PreviewTarget, ServerDirectory
from codepilot_spawner.services.preview.sessions import KeptFile, SessionBook, ShareBook
from codepilot_spawner.services.preview.tokenchecks import TokenChecks
from codepilot_spawner.services.preview.tokens import InvalidToken, sign, verify
from codepilot_spawner.spawners.previewroute import PreviewRoute

from .support.hubtools import free_port
from .support.loopback import start_on_loopback
from .support.previewreplica import gateway_replica

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
NAMES = [
    ("a-b", ""),
    ("a--b", ""),
    ("a", "b"),
    ("a-b", "x"),
    ("Alice", ""),
    ("alice", ""),
    ("ålice", ""),
    ("alice", "default"),
    ("björk@example.org", "my project"),
    ("用户", ""),
    ("x" * 255, "y" * 255),
    ("", ""),
]


def test_labels_are_dns_safe_and_never_shared():
    labels = [preview_label(user, server) for user, server in NAMES]
    assert len(set(labels)) == len(labels)
    for label in labels:
        assert DNS_LABEL.match(label), label


def test_labels_are_stable_and_readable():
    assert preview_label("alice", "blog") == preview_label("alice", "blog")
    assert preview_label("alice", "blog").startswith("alice-blog-")


def test_domain_builds_and_reads_hosts():
    domain = PreviewDomain("preview.localhost", "http", 8002)
    label = preview_label("alice")
    assert domain.url("alice") == f"http://{label}.preview.localhost:8002/"
    assert domain.label_of(f"{label}.preview.localhost:8002") == label
    assert domain.label_of(f"{label.upper()}.Preview.Localhost") == label
    for foreign in ("preview.localhost", "a.b.preview.localhost", "evil.example", "x.localhost"):
        assert domain.label_of(foreign) is None
    assert PreviewDomain("p.example.org", "https", 443).origin("x") == "https://x.p.example.org"


@pytest.mark.parametrize(
    ("env", "public_url"),
    [
        # With subdomains the hub gives the service a host of its own.
        (
            {"JUPYTERHUB_PUBLIC_URL": "http://codepilot-preview--service.localhost:8000/s/p/"},
            "http://codepilot-preview--service.localhost:8000/s/p/",
        ),
        ({"JUPYTERHUB_SERVICE_PREFIX": "/s/p/"}, "http://hub.example.test/s/p/"),
    ],
)
def test_viewers_sign_in_at_the_service_url_the_hub_gives(monkeypatch, env, public_url):
    monkeypatch.delenv("JUPYTERHUB_PUBLIC_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = PreviewGatewayApp(hub_url="http://hub.example.test")
    assert app.public_url == public_url


def test_signed_values_refuse_forgery_expiry_and_reuse_elsewhere():
    secret, now = b"s" * 32, time.time()
    token = sign(secret, "ticket", {"label": "a", "start": "1", "exp": now + 60})
    assert verify(secret, "ticket", token, now, label="a", start="1")["label"] == "a"
    cases = {
        "bad signature": (b"t" * 32, "ticket", token, now, {}),
        "not a session": (secret, "session", token, now, {}),
        "expired": (secret, "ticket", token, now + 61, {}),
        "issued for another label": (secret, "ticket", token, now, {"label": "b"}),
        "issued for another start": (secret, "ticket", token, now, {"start": "2"}),
    }
    for reason, (key, kind, value, at, expected) in cases.items():
        with pytest.raises(InvalidToken, match=reason):
            verify(key, kind, value, at, **expected)
    with pytest.raises(InvalidToken):
        verify(secret, "ticket", token.replace(".", ".x", 1), now)


@pytest.mark.parametrize(
    "scopes, allowed",
    [
        (["access:servers"], True),
        (["access:servers!user=bob"], True),
        (["access:servers!server=bob/web"], True),
        (["access:servers!server=bob/"], False),
        (["access:servers!group=students"], True),
        (["access:servers!group=teachers"], False),
        (["access:servers!user=bobby"], False),
        (["read:servers", "admin:users"], False),
        ([], False),
    ],
)
def test_access_follows_jupyterhub_scopes_and_groups(scopes, allowed):
    assert grants_server_access(scopes, "bob", "web", ("students",)) is allowed


def test_identity_cookies_never_reach_the_app():
    header = "jupyterhub-user-bob=1; _xsrf=2; codepilot_preview_session=3; theme=dark; sid=4"
    assert app_cookies(header) == "theme=dark; sid=4"
    assert (
        session_cookie_values("a=1; codepilot_preview_session=x; codepilot_preview_session=y")[1]
        == "y"
    )


@pytest.mark.parametrize(
    "path, safe",
    [
        ("/a?b=1", "/a?b=1"),
        ("//evil.example/", "/"),
        ("/\\evil", "/"),
        ("http://x/", "/"),
        ("/\t/evil.example", "/"),  # browsers drop the tab: //evil.example
        ("/\n/evil.example", "/"),
        ("/%09/stays-local", "/%09/stays-local"),
    ],
)
def test_sign_in_returns_only_to_local_paths(path, safe):
    assert safe_next(path) == safe


async def test_sessions_held_in_memory_are_bounded_and_an_evicted_one_comes_back_checked():
    book = SessionBook(ttl=3600, in_memory=5)
    target = PreviewTarget(user="ana", server="", label="ana-x", route=PreviewRoute("1", 3000))
    ids = [await book.open("bob", "t", ["access:servers!user=ana", "read:users"], target)]
    ids += [await book.open("carl", "t", (), target) for _ in range(50)]
    assert len(book.sessions) == 5 and ids[0] not in book.sessions
    # The first session is out of memory, not ended: its cookie brings it back, to be
    # checked at the hub at its first use (checked_at 0), with only what decides access.
    back = book.get(ids[0], target)
    assert (back.viewer, back.checked_at, back.scopes) == ("bob", 0.0, {"access:servers!user=ana"})
    assert len(book.sessions) == 5
    assert book.get(ids[0][:-4] + "AAAA", target) is None  # tampered: refused


def test_refused_tokens_cost_nothing_and_new_ones_are_asked_about_at_a_bounded_rate():
    checks = TokenChecks(rate=10, burst=3, remember=60, size=2)
    assert [checks.may_ask() for _ in range(5)] == [True, True, True, False, False]
    checks.refused("a")
    assert checks.refused_lately("a") and not checks.refused_lately("b")
    checks.refused("b")
    checks.refused("c")  # over the size: the oldest is forgotten
    assert not checks.refused_lately("a") and checks.refused_lately("c")
    time.sleep(0.25)  # 10 a second: two more
    assert [checks.may_ask() for _ in range(3)] == [True, True, False]


def test_an_accepted_token_is_remembered_so_sending_it_again_costs_no_hub_call():
    checks = TokenChecks(rate=10, burst=1, remember=0.2, size=2)
    assert checks.may_ask() and not checks.may_ask()  # the rate is spent
    checks.accepted("mine", {"name": "ana", "scopes": ["access:servers!user=ana"]})
    assert checks.accepted_lately("mine") == {"name": "ana", "scopes": ["access:servers!user=ana"]}
    assert checks.accepted_lately("other") is None and not checks.refused_lately("mine")
    checks.accepted("b", {"name": "b"})
    checks.accepted("c", {"name": "c"})  # over the size: the oldest is forgotten
    assert checks.accepted_lately("mine") is None and checks.accepted_lately("c")
    time.sleep(0.25)  # past ``remember``: the hub is asked again
    assert checks.accepted_lately("c") is None


async def test_sessions_and_the_signing_key_outlive_the_gateways_process(tmp_path):
    state = tmp_path / "preview"
    key = kept_key(state)
    target = PreviewTarget(user="ana", server="", label="ana-x", route=PreviewRoute("1", 3000))
    kept = KeptFile(state / "sessions.json", logging.getLogger())
    book = SessionBook(ttl=3600, file=kept, key=key)
    sid = await book.open("bob", "bobs-token", ["access:servers!user=ana"], target)
    assert await book.spend_nonce("n1", time.time() + 60)

    # What a restarted gateway reads: the same key, so the session its cookie carries
    # (to be rechecked at once), and the spent nonce; all of it private to the gateway.
    again = SessionBook(
        ttl=3600, file=KeptFile(state / "sessions.json", logging.getLogger()), key=kept_key(state)
    )
    assert kept_key(state) == key and len(key) == 32
    session = again.get(sid, target)
    assert (session.viewer, session.token, session.checked_at) == ("bob", "bobs-token", 0.0)
    assert session.may_open(target)
    assert not await again.spend_nonce("n1", time.time() + 60)
    assert {oct(path.stat().st_mode & 0o777) for path in [state, *state.iterdir()]} == {
        "0o700",
        "0o600",
    }
    # A server that stopped takes its sessions with it (a new start refuses the cookie).
    await again.prune({})
    assert again.sessions == {}
    restarted = PreviewTarget(user="ana", server="", label="ana-x", route=PreviewRoute("2", 3000))
    assert again.get(sid, restarted) is None
    # Another key opens nothing.
    assert SessionBook(3600, key=b"other" * 8).get(sid, target) is None


async def test_a_connection_slow_to_send_its_headers_is_closed():
    async def handler(request):
        return web.Response(text="ok")

    runner = web.ServerRunner(previews_server(handler, idle_timeout=0.5))
    port = await start_on_loopback(runner)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never the blank line
        with pytest.raises(ConnectionError):  # a header line now and then keeps it not
            for _ in range(40):
                await asyncio.sleep(0.1)
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
        assert time.monotonic() - started < 4
        assert reader.at_eof() or reader.exception() is not None  # and nothing answered
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_hub_that_does_not_answer_ends_no_sign_in_and_no_share(tmp_path):
    """The first listing after a restart can fail (the hub is busy or restarting too):
    what the gateway kept must survive it."""
    log = logging.getLogger()
    target = PreviewTarget(user="ana", server="", label="ana-x", route=PreviewRoute("1", 3000))
    sessions = SessionBook(3600, KeptFile(tmp_path / "sessions.json", log))
    sid = await sessions.open("bob", "t", [], target)
    shares = ShareBook(KeptFile(tmp_path / "shares.json", log), SHARE_LEVELS)
    await shares.set_level(target, "public")
    dead_hub = f"http://127.0.0.1:{free_port()}/hub/api"
    gateway = PreviewGateway(
        domain=PreviewDomain("preview.localhost", "http", 8002),
        directory=ServerDirectory(api_url=dead_hub, api_token="t", log=log),
        sessions=sessions,
        shares=shares,
        secret=b"k" * 32,
        login_url="http://hub/login",
        hub_auth=None,
    )
    await gateway.follow_hub()
    assert not gateway.directory.current_listing
    assert sessions.get(sid, target) is not None and shares.level(target) == "public"


# --- several gateways (Kubernetes replicas) -------------------------------------------------

NAVIGATE_HTML = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Accept": "text/html"}


async def serving(handler) -> tuple[web.AppRunner, int]:
    """``handler`` served on a loopback port of this process."""
    runner = web.ServerRunner(previews_server(handler, idle_timeout=5))
    return runner, await start_on_loopback(runner)


def replica(key: bytes, target: PreviewTarget) -> PreviewGateway:
    return gateway_replica(key, [target])


async def test_a_sign_in_at_one_replica_holds_at_another_and_its_link_only_in_its_browser():
    async def app(request):
        return web.Response(text=f"app page {request.path}")

    app_runner, app_port = await serving(app)
    key = b"k" * 32  # the Secret every replica mounts
    target = PreviewTarget(
        user="ana", server="", label=preview_label("ana"), route=PreviewRoute("1", app_port)
    )
    gateways = [replica(key, target), replica(key, target)]
    runners, ports = [], []
    for gateway in gateways:
        runner, port = await serving(gateway.handle)
        runners.append(runner)
        ports.append(port)
    host = f"{target.label}.preview.localhost"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            # Replica A sends the browser to sign in, marking it with a cookie of its own.
            to_login = await browser.get(
                f"http://127.0.0.1:{ports[0]}/page",
                headers={**NAVIGATE_HTML, "Host": f"{host}:{ports[0]}"},
                allow_redirects=False,
            )
            assert to_login.status == 302
            digest = parse_qs(urlsplit(to_login.headers["Location"]).query)["browser"][0]
            mark = to_login.cookies["codepilot_preview_browser"]
            assert mark["path"] == "/.codepilot-preview/sign-in" and mark["httponly"]
            # The hub-origin sign-in, served by whichever replica the proxy picked (A).
            sid = await gateways[0].sessions.open(
                "ana", "anas-token", ["access:servers!user=ana"], target
            )
            link = urlsplit(gateways[0].ticket_for(sid, target, "/page", browser=digest))
            path = f"{link.path}?{link.query}"
            # The link, from another browser, at either replica: refused.
            for port in ports:
                async with aiohttp.ClientSession() as other:
                    stolen = await other.get(
                        f"http://127.0.0.1:{port}{path}",
                        headers={"Host": f"{host}:{port}"},
                        allow_redirects=False,
                    )
                    assert stolen.status == 403
                    assert "belongs to another browser" in await stolen.text()
            # In its browser, at replica B, which never saw the sign-in: it holds.
            signed_in = await browser.get(
                f"http://127.0.0.1:{ports[1]}{path}",
                headers={
                    **NAVIGATE_HTML,
                    "Host": f"{host}:{ports[1]}",
                    "Cookie": f"codepilot_preview_browser={mark.value}",
                },
                allow_redirects=False,
            )
            assert signed_in.status == 302, await signed_in.text()
            cookie = signed_in.cookies["codepilot_preview_session"].value
            # The session cookie B set opens the preview at A, and at B.
            for port in ports:
                page = await browser.get(
                    f"http://127.0.0.1:{port}/page",
                    headers={
                        "Host": f"{host}:{port}",
                        "Sec-Fetch-Site": "same-origin",
                        "Cookie": f"codepilot_preview_session={cookie}",
                    },
                )
                assert (page.status, await page.text()) == (200, "app page /page")
            # The same link again at B: spent.
            again = await browser.get(
                f"http://127.0.0.1:{ports[1]}{path}",
                headers={
                    "Host": f"{host}:{ports[1]}",
                    "Cookie": f"codepilot_preview_browser={mark.value}",
                },
                allow_redirects=False,
            )
            assert again.status == 403 and "used already" in await again.text()
    finally:
        for gateway in gateways:
            await gateway.close()
        for runner in [*runners, app_runner]:
            await runner.cleanup()


def test_the_signing_key_comes_from_a_mounted_secret(tmp_path):
    secret = tmp_path / "signing-key"
    secret.write_bytes(b"0123456789abcdef" * 4 + b"\n")
    app = PreviewGatewayApp(signing_key_file=str(secret), state_dir=str(tmp_path / "state"))
    assert app.signing_key() == b"0123456789abcdef" * 4
    assert not (tmp_path / "state").exists()  # no key made beside it
    secret.write_bytes(b"short")
    with pytest.raises(SystemExit, match="no key"):
        app.signing_key()


def test_the_hub_origin_listener_binds_its_own_address_behind_a_service(monkeypatch):
    # On Kubernetes the hub reaches the gateway at its Service's name, which is no
    # address of the pod: binding it would fail.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://cp-preview:8083")
    assert PreviewGatewayApp(hub_origin_ip="::").hub_origin_address() == (8083, "::")
    assert PreviewGatewayApp(hub_origin_ip="*").hub_origin_address() == (8083, "")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8083")
    assert PreviewGatewayApp().hub_origin_address() == (8083, "127.0.0.1")


def test_listings_that_take_the_hub_long_are_spaced_to_a_small_share_of_its_time():
    directory = ServerDirectory("http://hub/api", "t", interval=2.0, max_interval=30.0)
    assert directory.next_interval == 2.0  # nothing measured yet: a small class
    directory.last_fetch_seconds = 0.01
    assert directory.next_interval == 2.0
    directory.last_fetch_seconds = 0.2  # a class of a few hundred: 2% of the hub's time
    assert directory.next_interval == pytest.approx(10.0)
    directory.last_fetch_seconds = 5.0
    assert directory.next_interval == 30.0


# --- forwarding ----------------------------------------------------------------------------


async def test_chunked_answers_pass_whole_and_a_stream_streams_event_by_event():
    """An answer without a length (Node's ``res.end`` after ``writeHead``: headers and
    chunks in one write) passes whole; server-sent events reach the viewer one by one,
    each before the app sends the next."""
    first_read = asyncio.Event()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    async def app(reader, writer):
        path = (await reader.readline()).split()[1]
        while await reader.readline() not in (b"\r\n", b""):
            pass  # the request's headers
        if path == b"/events":
            writer.write(head.format("text/event-stream").encode() + chunk(b"data: 1\n\n"))
            await asyncio.wait_for(first_read.wait(), 10)
            writer.write(chunk(b"data: 2\n\n") + chunk(b""))
        else:
            writer.write(head.format("text/plain").encode() + chunk(b"x" * 1024) + chunk(b""))
        await writer.drain()
        writer.close()

    app_server = await asyncio.start_server(app, "127.0.0.1", 0)
    app_port = app_server.sockets[0].getsockname()[1]
    target = PreviewTarget(
        user="ana", server="", label=preview_label("ana"), route=PreviewRoute("1", app_port)
    )
    gateway = gateway_replica(b"k" * 32, [target])
    await gateway.shares.set_level(target, "public")
    gateway_runner, gateway_port = await serving(gateway.handle)
    host = {"Host": f"{target.label}.preview.localhost"}
    try:
        async with aiohttp.ClientSession() as viewer:
            url = f"http://127.0.0.1:{gateway_port}"
            async with viewer.get(f"{url}/page", headers=host) as page:
                assert (page.status, await page.read()) == (200, b"x" * 1024)
            async with viewer.get(f"{url}/events", headers=host) as events:
                assert events.headers["Content-Type"] == "text/event-stream"
                assert await events.content.readuntil(b"\n\n") == b"data: 1\n\n"
                first_read.set()
                assert await events.content.read() == b"data: 2\n\n"
    finally:
        await gateway.close()
        await gateway_runner.cleanup()
        app_server.close()
