"""Previews on origins of their own, end to end: the real hub, gateway, servers and app.

The owner (mallory, whose app may be hostile) runs the test app in her terminal; bob is
another student, admin the hub's admin; vita runs apps that ignore ``PORT``, previewed
all the same, each port on an origin of its own. Requests go out like a browser's: to
``<label>.preview.localhost`` (resolved to loopback in this process, as browsers do),
with their own cookie jar per person and the ``Sec-Fetch-*`` headers browsers send.
"""

import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import websockets.exceptions
import websockets.sync.client
from websockets.exceptions import InvalidStatus

from codepilot_contracts.porthosts import port_url
from codepilot_spawner.services.preview.hosts import PreviewDomain

from .support.hubtools import REPO_ROOT, free_port, login, server_state, start_hub, wait_until
from .support.procfs import gateway_pid
from .support.terminals import run_in_terminal

PREVIEW_APP = REPO_ROOT / "tests" / "apps" / "preview_app.py"
ADMIN_PASSWORD = "admin-password-" + "x" * 24
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"}


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("localhost_names")]


@pytest.fixture(scope="module")
def hub():
    running = start_hub(env={"CODEPILOT_ADMIN_PASSWORD": ADMIN_PASSWORD})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mallory(hub):
    """The owner, with the test app running in her terminal."""
    hub.create_user("mallory")
    hub.start_server("mallory")
    token = hub.user_token("mallory")
    terminal = hub.open_terminal("mallory", token)
    terminal.__enter__()
    terminal.send(json.dumps(["stdin", f"python {PREVIEW_APP}\r"]))
    yield {"token": token, "terminal": terminal}
    terminal.__exit__(None, None, None)


@pytest.fixture(scope="module")
def preview(hub, mallory) -> str:
    url = PreviewDomain("preview.localhost", "http", hub.preview_port).url("mallory")
    owner = login(hub, "mallory")
    wait_until(lambda: open_preview(owner, url).status_code == 200, 60, 0.3, "mallory's app")
    return url


def open_preview(session: requests.Session, url: str, **kwargs) -> requests.Response:
    """A top-level navigation, following redirects through the sign-in as a browser does."""
    return session.get(url, headers={**NAVIGATE, **kwargs.pop("headers", {})}, **kwargs)


def set_share(hub, user: str, token: str, level: str) -> requests.Response:
    return requests.put(
        f"{hub.server_url(user)}codepilot/api/preview",
        headers={"Authorization": f"token {token}"},
        json={"share": level},
        timeout=30,
    )


def headers_seen_by_app(response: requests.Response) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in response.json():
        seen.setdefault(name.lower(), []).append(value)
    return seen


@pytest.fixture
def owner_only(hub, mallory):
    yield
    assert set_share(hub, "mallory", mallory["token"], "owner").status_code == 200


# --- where the preview is ----------------------------------------------------------------


def test_the_preview_has_an_origin_of_its_own(hub, mallory):
    with hub.open_terminal("mallory", mallory["token"]) as ws:
        output = run_in_terminal(ws, 'echo "URL=$CODEPILOT_PREVIEW_URL $((6*7))"', "42")
    url = next(
        line.split("=", 1)[1].split()[0] for line in output.splitlines() if "URL=http" in line
    )
    parsed = urlparse(url)
    assert parsed.hostname.endswith(".preview.localhost")
    assert parsed.hostname != urlparse(hub.url).hostname
    assert parsed.path == "/"
    assert url == PreviewDomain("preview.localhost", "http", hub.preview_port).url("mallory")


def test_server_preview_path_redirects_to_the_origin(hub, mallory, preview):
    response = requests.get(
        f"{hub.server_url('mallory')}preview/src/main.js?v=1",
        headers={"Authorization": f"token {mallory['token']}"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"{preview}src/main.js?v=1"


@pytest.mark.parametrize("path", ["proxy/{port}/", "proxy/absolute/{port}/"])
def test_the_app_is_never_served_on_the_ide_origin(hub, mallory, preview, path):
    port = hub.api("GET", "/users/mallory").json()["servers"][""]["state"]["app_port"]
    response = requests.get(
        f"{hub.server_url('mallory')}{path.format(port=port)}headers",
        headers={"Authorization": f"token {mallory['token']}"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 404  # no proxy route in the IDE at all
    assert "app page" not in response.text


def test_the_server_says_whether_the_app_listens(hub, mallory, preview):
    """What "Your app is running" in the IDE asks: the server checks its own port."""
    port = hub.api("GET", "/users/mallory").json()["servers"][""]["state"]["app_port"]
    url = f"{hub.server_url('mallory')}codepilot/api/app"
    own = requests.get(url, headers={"Authorization": f"token {mallory['token']}"}, timeout=30)
    assert own.status_code == 200, own.text
    assert own.json() == {"port": port, "listening": True, "app_port": port, "ports": []}
    hub.create_user("bob")
    bob_token = hub.user_token("bob")
    other = requests.get(url, headers={"Authorization": f"token {bob_token}"}, timeout=30)
    assert other.status_code == 403
    assert "listening" not in other.text


# --- who gets in ---------------------------------------------------------------------------


def test_owner_signs_in_and_the_app_sees_nothing_of_them(hub, preview):
    owner = login(hub, "mallory")
    owner.get(f"{preview}set-cookie", headers=NAVIGATE).raise_for_status()
    response = open_preview(
        owner,
        f"{preview}headers",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 200
    assert urlparse(response.url).hostname == urlparse(preview).hostname
    seen = headers_seen_by_app(response)
    cookies = "; ".join(seen.get("cookie", []))
    assert "app_session=42" in cookies  # the app's own cookie passes
    for credential in ("jupyterhub", "_xsrf", "codepilot_preview"):
        assert credential not in cookies
    assert "authorization" not in seen
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-host"] == [urlparse(preview).netloc]
    assert "ticket" not in response.url  # no credential left in the address bar


def test_another_student_is_refused(hub, preview):
    bob = login(hub, "bob")
    response = open_preview(bob, preview)
    assert response.status_code == 403
    assert "bob may not open this preview" in response.text
    assert "app page" not in response.text


def test_an_anonymous_browser_is_sent_to_the_hub_login(hub, preview):
    response = open_preview(requests.Session(), preview)
    assert response.status_code == 200
    assert urlparse(response.url).path == "/hub/login"


def test_the_admin_may_open_a_students_preview(hub, preview):
    admin = login(hub, "admin", ADMIN_PASSWORD)
    response = open_preview(admin, f"{preview}page")
    assert response.status_code == 200
    assert response.text == "app page /page"


def test_a_script_may_use_a_hub_token_instead_of_cookies(hub, mallory, preview):
    own = requests.get(
        f"{preview}headers", headers={"Authorization": f"token {mallory['token']}"}, timeout=30
    )
    assert own.status_code == 200
    assert "authorization" not in headers_seen_by_app(own)
    hub.create_user("bob")  # whichever test of this hub runs first
    bob_token = hub.user_token("bob")
    other = requests.get(preview, headers={"Authorization": f"token {bob_token}"}, timeout=30)
    assert other.status_code == 403
    forged = requests.get(preview, headers={"Authorization": "token not-a-token"}, timeout=30)
    assert forged.status_code == 401
    # A service's token (CODEPILOT_ADMIN_TOKEN's, with access:servers) opens it too.
    service = requests.get(preview, headers={"Authorization": f"token {hub.token}"}, timeout=30)
    assert service.status_code == 200, service.text


# --- sharing -------------------------------------------------------------------------------


def test_share_levels_open_the_preview_step_by_step(hub, mallory, preview, owner_only):
    bob, anonymous = login(hub, "bob"), requests.Session()
    assert open_preview(bob, preview).status_code == 403

    shared = set_share(hub, "mallory", mallory["token"], "authenticated")
    assert shared.status_code == 200
    assert shared.json() == {
        "url": preview,
        "share": "authenticated",
        "allowed": ["owner", "authenticated", "public"],
    }
    assert open_preview(bob, preview).status_code == 200
    assert urlparse(open_preview(anonymous, preview).url).path == "/hub/login"

    assert set_share(hub, "mallory", mallory["token"], "public").status_code == 200
    public = requests.get(preview, timeout=30)  # no sign-in at all
    assert public.status_code == 200
    assert public.text == "app page /"

    # Back to private: bob's session from the "authenticated" time no longer opens it.
    assert set_share(hub, "mallory", mallory["token"], "owner").status_code == 200
    assert open_preview(bob, preview).status_code == 403


def test_sharing_is_the_owners_alone(hub, mallory, preview):
    bob_token = hub.user_token("bob")
    via_server = set_share(hub, "mallory", bob_token, "public")
    assert via_server.status_code == 403
    gateway = f"{hub.service_url('codepilot-preview')}api/shares/mallory/"
    direct = requests.put(
        gateway, headers={"Authorization": f"token {bob_token}"}, json={"share": "public"}
    )
    assert direct.status_code == 403
    assert requests.get(gateway, timeout=30).status_code == 401
    assert set_share(hub, "mallory", mallory["token"], "everyone").status_code == 400
    model = requests.get(
        f"{hub.server_url('mallory')}codepilot/api/preview",
        headers={"Authorization": f"token {mallory['token']}"},
        timeout=30,
    ).json()
    assert model["share"] == "owner"


def raw_request(hub, host: str, request_line: str) -> bytes:
    """One request as bytes on the wire to the preview gateway, its answer's first line."""
    with socket.create_connection(("127.0.0.1", hub.preview_port), timeout=30) as connection:
        connection.sendall(f"{request_line}\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_request_cannot_name_another_target_than_the_app(hub, mallory, preview, owner_only):
    """Public, so nothing stops the requests before the gateway builds the app's URL."""
    assert set_share(hub, "mallory", mallory["token"], "public").status_code == 200
    host = urlparse(preview).netloc
    app_port = server_state(hub, "mallory")["app_port"]
    for line, status in [
        (f"CONNECT @127.0.0.1:{app_port} HTTP/1.1", b" 405 "),
        (f"CONNECT 127.0.0.1:{app_port} HTTP/1.1", b" 405 "),
        ("TRACE / HTTP/1.1", b" 405 "),
        (f"GET http://127.0.0.1:{app_port}/ HTTP/1.1", b" 400 "),
        (f"GET @127.0.0.1:{app_port} HTTP/1.1", b" 400 "),
    ]:
        answer = raw_request(hub, host, line)
        assert status in answer.split(b"\r\n", 1)[0], (line, answer[:300])
        assert b"app page" not in answer, line
    assert b" 200 " in raw_request(hub, host, "GET /fine HTTP/1.1").split(b"\r\n", 1)[0]


def test_an_app_cannot_set_cookies_for_other_previews(hub, preview):
    owner = login(hub, "mallory")
    response = open_preview(owner, f"{preview}toss-cookie")
    assert response.text == "cookie tossed"
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("tossed=1") and "domain" not in set_cookie.lower()
    tossed = [cookie for cookie in owner.cookies if cookie.name == "tossed"]
    assert [cookie.domain for cookie in tossed] == [urlparse(preview).hostname], tossed


def gateway_rss_kib(hub) -> int:
    status = Path(f"/proc/{gateway_pid(hub)}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1])


def hub_calls(hub, pattern: str) -> int:
    return len(re.findall(pattern, hub.log()))


def test_floods_cost_the_hub_little_and_the_gateway_stays_small(hub, mallory, preview):
    """Made-up tokens, made-up hosts and a message too big: each bounded."""
    before = gateway_rss_kib(hub)
    token_checks = hub_calls(hub, r"GET /hub/api/user \(")
    listings = hub_calls(hub, r"GET /hub/api/users\?state=.*codepilot-preview")
    started = time.monotonic()
    # 20 at a time: they come faster than the gateway may ask the hub (10 a second past a
    # burst of 20) however long the hub takes to answer each, on a busy machine too.
    with ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(
                lambda _: (
                    requests.get(
                        preview,
                        headers={"Authorization": f"token {os.urandom(16).hex()}"},
                        timeout=30,
                    ).status_code
                ),
                range(300),
            )
        )
    with requests.Session() as attacker:
        same = [
            attacker.get(preview, headers={"Authorization": "token the-same"}, timeout=30)
            for _ in range(50)
        ]
    # Made-up hosts, 30 at a time: those in flight together share one listing.
    domain = PreviewDomain("preview.localhost", "http", hub.preview_port)
    with ThreadPoolExecutor(30) as pool:
        unknown = list(
            pool.map(
                lambda n: requests.get(domain.url(f"nobody{n}"), timeout=60).status_code,
                range(300),
            )
        )
    seconds = time.monotonic() - started
    assert set(answers) <= {401, 429} and 429 in answers, set(answers)
    assert {response.status_code for response in same} <= {401, 429}
    assert set(unknown) == {404}
    asked = hub_calls(hub, r"GET /hub/api/user \(") - token_checks
    assert asked <= 20 + 10 * seconds + 1, (asked, seconds)  # burst, then 10 a second
    listed = hub_calls(hub, r"GET /hub/api/users\?state=.*codepilot-preview") - listings
    print(json.dumps({"listings": listed, "unknown_hosts": len(unknown), "seconds": seconds}))
    assert listed <= 3 * seconds + 3, (listed, seconds)  # polls + on demand, not per host
    # A websocket message over the limit closes the socket (1009); the gateway goes on.
    owner = login(hub, "mallory")
    assert open_preview(owner, preview).status_code == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in owner.cookies if "preview" in c.domain)
    ws_url = "ws" + preview[len("http") :]
    app = websockets.sync.client.connect(
        ws_url,
        additional_headers={"Cookie": cookie, "Origin": preview.rstrip("/")},
        max_size=None,
    )
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        app.send(b"x" * (17 * 1024 * 1024))
        app.recv(timeout=30)
    app.close()
    # 1009, or a reset while the rest of the message was still being sent.
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009, closed.value
    assert open_preview(owner, preview).status_code == 200
    grown = gateway_rss_kib(hub) - before
    print(json.dumps({"gateway_rss_growth_kib": grown, "seconds": round(seconds, 1)}))
    assert grown < 64 * 1024, grown


def test_a_killed_gateway_is_back_at_once_and_its_viewers_stay_signed_in(hub, preview):
    owner = login(hub, "mallory")
    assert open_preview(owner, preview).status_code == 200
    killed = gateway_pid(hub)
    os.kill(killed, signal.SIGKILL)
    started = time.monotonic()
    # Sent while it restarts: it waits in the listen backlog its supervisor holds, and the
    # restarted gateway knows the session cookie (its key and sessions were kept).
    with requests.Session() as viewer:  # new connections, the same cookies
        viewer.cookies.update(owner.cookies)
        again = open_preview(viewer, preview, allow_redirects=False, timeout=30)
    seconds = time.monotonic() - started
    print(json.dumps({"gateway_back_after_kill_seconds": round(seconds, 2)}))
    assert again.status_code == 200, (again.status_code, again.headers.get("Location"))
    assert gateway_pid(hub) != killed


# --- the sign-in handshake -----------------------------------------------------------------


def sign_in_link(hub, session: requests.Session, preview: str) -> str:
    """The gateway's single-use link to the preview, as the hub hands it out."""
    response = session.get(preview, headers=NAVIGATE, allow_redirects=False)
    while "ticket=" not in response.headers.get("Location", ""):
        assert response.status_code == 302, response.text
        location = requests.compat.urljoin(response.url, response.headers["Location"])
        response = session.get(location, headers=NAVIGATE, allow_redirects=False)
    return response.headers["Location"]


def test_a_sign_in_link_works_once(hub, preview):
    owner = login(hub, "mallory")
    link = sign_in_link(hub, owner, preview)
    assert open_preview(requests.Session(), link).text == "app page /"
    replayed = open_preview(requests.Session(), link)
    assert replayed.status_code == 403
    assert "used already" in replayed.text


def test_a_forged_or_foreign_ticket_gets_a_clear_403(hub, preview):
    owner = login(hub, "mallory")
    link = sign_in_link(hub, owner, preview)
    ticket = parse_qs(urlparse(link).query)["ticket"][0]
    body, _, signature = ticket.partition(".")
    forged = f"{body}.{signature[::-1]}"
    response = open_preview(requests.Session(), link.replace(ticket, forged))
    assert response.status_code == 403
    assert "bad signature" in response.text
    # A genuine ticket for mallory's preview, presented at bob's preview's origin.
    hub.create_user("bob")
    hub.start_server("bob")
    bobs = PreviewDomain("preview.localhost", "http", hub.preview_port).url("bob")
    response = open_preview(requests.Session(), link.replace(preview, bobs))
    assert response.status_code == 403
    assert "issued for another label" in response.text
    hub.stop_server("bob")


def test_the_cookie_does_not_work_from_another_origin(hub, preview):
    owner = login(hub, "mallory")
    assert open_preview(owner, preview).status_code == 200
    cross = owner.post(
        f"{preview}anything",
        headers={"Origin": "http://other.preview.localhost", "Sec-Fetch-Site": "same-site"},
    )
    assert cross.status_code == 401
    same = owner.get(f"{preview}page", headers={"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200


def test_over_plain_http_only_the_previews_own_pages_use_the_cookie(hub, preview):
    """Browsers send no ``Sec-Fetch-*`` to plain-HTTP origins (a school network): the
    gateway reads ``Origin`` and ``Referer`` instead, and bounces a page visit from
    elsewhere through a page of the preview's own (which asks again, as its referrer)."""
    owner = login(hub, "mallory")
    assert open_preview(owner, preview).status_code == 200
    own, other = preview.rstrip("/"), "http://other.preview.localhost"
    page = "text/html,application/xhtml+xml"

    def get(path="page", **headers):
        return owner.get(f"{preview}{path}", headers=headers, allow_redirects=False)

    visit = get(Accept=page)  # typed, bookmarked or linked: no Referer of the preview
    assert visit.status_code == 200 and "app page" not in visit.text
    assert 'const path = "/page";' in visit.text
    assert visit.headers["Referrer-Policy"] == "same-origin"
    assert get(Accept=page, Referer=f"{own}/").text == "app page /page"  # the bounce's ask
    assert get(Accept="*/*", Referer=f"{own}/index.html").text == "app page /page"
    # Another preview's page: its <script>/<img> get nothing, its <iframe> the bounce.
    assert get(Accept="*/*", Referer=f"{other}/").status_code == 401
    assert get(Accept="*/*").status_code == 401
    framed = get(Accept=page, Referer=f"{other}/")
    assert framed.status_code == 200 and "app page" not in framed.text
    posted = owner.post(f"{preview}anything", headers={"Origin": other, "Referer": f"{own}/"})
    assert posted.status_code == 401
    assert owner.post(f"{preview}page", headers={"Origin": own}).status_code == 200
    # "//host" in a visited path never becomes a navigation elsewhere.
    assert 'const path = "/";' in get("/evil.example/x", Accept=page).text
    # With no cookie at all, a page visit starts the sign-in, as with Sec-Fetch-Mode.
    anonymous = requests.get(preview, headers={"Accept": page}, allow_redirects=False)
    assert anonymous.status_code == 302 and "/login?" in anonymous.headers["Location"]


def test_websockets_pass_from_the_previews_own_page_only(hub, preview):
    owner = login(hub, "mallory")
    assert open_preview(owner, preview).status_code == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in owner.cookies if "preview" in c.domain)
    origin = preview.rstrip("/")
    ws_url = "ws" + preview[len("http") :]
    with websockets.sync.client.connect(
        ws_url, additional_headers={"Cookie": cookie, "Origin": origin}
    ) as app:
        app.send("hello")
        assert app.recv(timeout=10) == "echo: hello"
    with pytest.raises(InvalidStatus) as refused:
        websockets.sync.client.connect(
            ws_url, additional_headers={"Cookie": cookie, "Origin": "http://evil.example"}
        )
    assert refused.value.response.status_code == 401


# --- the life of a preview -----------------------------------------------------------------


def test_no_app_yet_gets_the_start_your_app_page(hub):
    hub.create_user("carol")
    hub.start_server("carol")
    carol = login(hub, "carol")
    url = PreviewDomain("preview.localhost", "http", hub.preview_port).url("carol")
    response = open_preview(carol, url)
    assert response.status_code == 502
    assert "Start your app in a terminal" in response.text
    app = requests.get(
        f"{hub.server_url('carol')}codepilot/api/app",
        headers={"Authorization": f"token {hub.user_token('carol')}"},
        timeout=30,
    )
    assert app.json()["listening"] is False
    assert "Traceback" not in response.text

    hub.stop_server("carol")
    stopped = open_preview(carol, url)
    assert stopped.status_code == 404
    assert "not running" in stopped.text

    # A new start is a new preview session: the old cookie no longer signs carol in.
    hub.start_server("carol")
    again = carol.get(url, headers=NAVIGATE, allow_redirects=False)
    assert again.status_code == 302
    assert "/services/codepilot-preview/login" in again.headers["Location"]
    hub.stop_server("carol")


# --- other ports: the preview follows the app, every port a preview of its own -------------
#
# vita's run starts an app that ignores PORT (http.server on 5173, on 127.0.0.1, as Vite
# does by default); a second app listens on 8000 from her terminal.

RUN_COMMAND = "python -m http.server 5173 --bind 127.0.0.1 --directory vite"
SECOND_APP = "python -m http.server 8000 --bind 127.0.0.1 --directory django"


def vita_api(hub, method: str, path: str, token: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{hub.server_url('vita')}{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kwargs,
    )


def test_the_preview_follows_the_runs_port_and_every_port_has_a_preview(hub):
    hub.create_user("vita")
    hub.create_user("bob")
    hub.start_server("vita")
    token = hub.user_token("vita")
    with hub.open_terminal("vita", token) as ws:
        run_in_terminal(
            ws,
            "mkdir -p vite django && echo vite-page > vite/index.html"
            " && echo django-page > django/index.html"
            f" && printf '[run]\\ncommand = \"{RUN_COMMAND}\"\\n' > codepilot.toml"
            f" && (setsid {SECOND_APP} >/dev/null 2>&1 &) && echo READY$((6*7))",
            "READY42",
        )
    assert vita_api(hub, "POST", "codepilot/api/run", token, json={}).status_code == 200

    # The server sees which process listens where, and which port is the app's.
    def app_model():
        model = vita_api(hub, "GET", "codepilot/api/app", token).json()
        ports = {p["port"] for p in model["ports"]}
        return model if model["app_port"] == 5173 and 8000 in ports else None

    model = wait_until(app_model, 60, 0.3, "the run's app and the second app listening")
    url = PreviewDomain("preview.localhost", "http", hub.preview_port).url("vita")
    by_port = {p["port"]: p for p in model["ports"]}
    assert model["listening"] is False and model["port"] not in by_port
    assert by_port[5173]["run"] and by_port[5173]["process"].startswith("python")
    assert not by_port[8000]["run"]
    assert by_port[8000]["url"] == port_url(url, 8000)

    # The main preview shows the run's app although it ignores PORT.
    owner = login(hub, "vita")
    main = open_preview(owner, url, timeout=30)
    assert main.status_code == 200 and "vite-page" in main.text
    # 8000 on an origin of its own, with a sign-in of its own.
    second = open_preview(owner, port_url(url, 8000), timeout=30)
    assert second.status_code == 200 and "django-page" in second.text
    assert second.url.startswith(port_url(url, 8000))

    # The server's own ports (its IDE, ports forwarded to the hub) and closed ones: never.
    state = hub.api("GET", "/users/vita").json()["servers"][""]["state"]
    assert state["reserved_ports"], state
    for port in (*state["reserved_ports"], free_port()):
        refused = open_preview(owner, port_url(url, port), timeout=30)
        assert refused.status_code == 404, (port, refused.text)
        assert "Nothing to preview on this port" in refused.text

    # A port host has the server's share level: another student only once it is shared.
    bob = login(hub, "bob")
    assert open_preview(bob, port_url(url, 8000), timeout=30).status_code == 403
    assert set_share(hub, "vita", token, "authenticated").status_code == 200
    shared = open_preview(bob, port_url(url, 8000), timeout=30)
    assert shared.status_code == 200 and "django-page" in shared.text
    assert json.loads(set_share(hub, "vita", token, "owner").text)["share"] == "owner"
    assert open_preview(bob, port_url(url, 8000), timeout=30).status_code == 403


def test_preview_use_reaches_the_hub_as_activity(hub, mallory, preview):
    def hub_activity():
        model = hub.api("GET", "/users/mallory").json()["servers"][""]
        return datetime.fromisoformat(model["last_activity"].replace("Z", "+00:00"))

    before_use = datetime.now(UTC)
    time.sleep(1)
    requests.get(f"{preview}page", headers={"Authorization": f"token {mallory['token']}"})
    wait_until(lambda: hub_activity() > before_use, 30, 0.5, "preview activity at the hub")
