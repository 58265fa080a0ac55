"""A class on a school network over plain HTTP, in real Chromium.

The hub is ``http://hub.example.test:<port>`` (``CODEPILOT_PUBLIC_URL``) and previews
are ``*.cp-previews.test`` (``CODEPILOT_PREVIEW_DOMAIN``), both mapped to this machine
with ``--host-resolver-rules``. Over plain HTTP on such names browsers send no
``Sec-Fetch-*`` headers, so the preview gateway decides from ``Origin`` and ``Referer``:
a student's page and its own requests must load, another student is refused, and a
public preview opens without login.
"""

import json
import re

import pytest
import requests
from playwright.sync_api import expect

from ..support.hubtools import save_text, wait_until
from ..support.terminals import run_in_terminal
from .chromium import VIEWPORT
from .lab import UI_TIMEOUT_MS, log_in
from .network import PREVIEW_DOMAIN
from .vite_run import edit_arrives_by_hot_reload, start_react_vite

pytestmark = pytest.mark.browser

HOMEWORK = """<!doctype html>
<html><head><meta charset="utf-8"><title>Homework</title></head>
<body><h1>My homework</h1><p id="data">loading</p>
<script>
fetch("data.json").then((reply) => reply.json())
  .then((data) => { document.getElementById("data").textContent = data.message; })
  .catch((error) => { document.getElementById("data").textContent = "failed: " + error; });
</script></body></html>
"""


@pytest.fixture(scope="module")
def public_url(network_hub) -> str:
    return network_hub.url


@pytest.fixture(scope="module")
def mallory(network_hub):
    """Her homework served from her workspace on port $PORT; its preview URL."""
    hub = network_hub
    hub.create_user("mallory")
    hub.start_server("mallory")
    token = hub.user_token("mallory")
    headers = {"Authorization": f"token {token}"}
    for name, text in (("index.html", HOMEWORK), ("data.json", '{"message": "data loaded"}')):
        save_text(hub.server_url("mallory"), name, text, headers).raise_for_status()
    with hub.open_terminal("mallory", token) as terminal:
        run_in_terminal(
            terminal, "(python -m http.server $PORT --bind 127.0.0.1 &) ; echo ok-$((2+2))", "ok-4"
        )
    preview = requests.get(
        f"{hub.server_url('mallory')}preview/", headers=headers, allow_redirects=False, timeout=30
    ).headers["Location"]
    assert preview.startswith("http://mallory-") and f".{PREVIEW_DOMAIN}:" in preview, preview
    return {"url": preview, "token": token}


def test_a_student_opens_her_preview_over_plain_http(
    network_chromium, network_hub, public_url, mallory
):
    context = network_chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    sent = []
    page.on("request", lambda request: sent.append(request.all_headers()))
    log_in(page, public_url, "mallory", "class-password", next_path="/hub/home")
    page.wait_for_url(f"{public_url}/hub/home", timeout=UI_TIMEOUT_MS)

    page.goto(mallory["url"])  # sign-in at the hub, then her page and its own requests
    expect(page.get_by_role("heading", level=1)).to_have_text("My homework")
    expect(page.locator("#data")).to_have_text("data loaded")
    assert page.url.startswith(mallory["url"])
    # The case at hand: Chromium sent no Sec-Fetch-* to these plain-HTTP origins.
    assert not any(name.startswith("sec-fetch-") for headers in sent for name in headers)
    context.close()


def test_another_student_is_refused_and_a_public_preview_needs_no_login(
    network_chromium, network_hub, public_url, mallory
):
    network_hub.create_user("bob")
    context = network_chromium.new_context(viewport=VIEWPORT)
    bob = context.new_page()
    log_in(bob, public_url, "bob", "class-password", next_path="/hub/home")
    bob.wait_for_url(f"{public_url}/hub/**", timeout=UI_TIMEOUT_MS)
    answer = bob.goto(mallory["url"])
    assert answer.status == 403
    expect(bob.get_by_role("heading", level=1)).to_have_text("No access to this preview")
    context.close()

    shared = requests.put(
        f"{network_hub.server_url('mallory')}codepilot/api/preview",
        headers={"Authorization": f"token {mallory['token']}"},
        data=json.dumps({"share": "public"}),
        timeout=30,
    )
    assert shared.status_code == 200, shared.text
    stranger = network_chromium.new_context(viewport=VIEWPORT)
    page = stranger.new_page()
    page.goto(mallory["url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("My homework")
    expect(page.locator("#data")).to_have_text("data loaded")
    wait_until(lambda: page.url.startswith(mallory["url"]), 10, 0.2, "the public preview")
    stranger.close()


def test_react_vite_runs_and_hot_reloads_over_plain_http(network_chromium, network_hub):
    """The starter as its README says, on the network name over plain HTTP: Vite's module
    scripts and its hot-reload websocket pass the gateway with no ``Sec-Fetch-*``."""
    app = start_react_vite(network_chromium, network_hub, "vera")
    try:
        origin = app["origin"]
        assert re.fullmatch(rf"http://vera-[a-z0-9-]+\.{re.escape(PREVIEW_DOMAIN)}:\d+", origin)
        edit_arrives_by_hot_reload(app, "Hot reloaded over plain HTTP")
        to_preview = [headers for url, headers in app["sent"] if url.startswith(origin)]
        assert to_preview and not any("sec-fetch-site" in headers for headers in to_preview)
    finally:
        app["context"].close()
