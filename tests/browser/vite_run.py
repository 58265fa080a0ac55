"""The React + Vite starter run as its README says, in Chromium, on a network name: the
student logs in, starts the starter, runs ``npm install && npm run dev`` in a JupyterLab
terminal, opens the preview, and an edit arrives by hot reload (Vite's websocket through
the preview gateway). Over HTTPS (``test_network_class_tls.py``) and plain HTTP
(``test_network_class.py``) alike."""

import json
import re
from urllib.parse import urlsplit

from playwright.sync_api import expect

from .chromium import VIEWPORT
from .lab import (
    NPM_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    Terminal,
    dismiss_news_prompt,
    fetch_in_page,
    launcher_card,
    log_in,
    open_preview_tile,
    show_launcher,
    start_from_spawn_form,
    wait_for_lab,
)

STARTER_HEADING = "Hello from React + Vite"


def socket_scheme(url: str) -> str:
    return "wss" if url.startswith("https:") else "ws"


def open_terminal(lab, server_url: str):
    """A terminal from the launcher, once its shell has printed its prompt over the
    terminal's websocket (through the hub's proxy, on the server's own host); the terminal
    and its websocket."""
    show_launcher(lab)
    with lab.expect_websocket(lambda ws: "/terminals/websocket/" in ws.url) as opened:
        launcher_card(lab, "Terminal").click()
    socket = opened.value
    expected = f"{socket_scheme(server_url)}://{urlsplit(server_url).netloc}/"
    assert socket.url.startswith(expected), socket.url
    socket.wait_for_event(
        "framereceived", lambda frame: '"stdout"' in str(frame), timeout=UI_TIMEOUT_MS
    )
    return Terminal(lab, lab.locator(".jp-Terminal").last), socket


def start_react_vite(browser, hub, student: str) -> dict:
    """``student`` logs in, starts the starter and runs it; her lab, her preview's tab and
    what that tab's context sent (requests with their headers, websockets)."""
    context = browser.new_context(viewport=VIEWPORT)
    sent, sockets = [], []
    context.on("request", lambda request: sent.append((request.url, request.all_headers())))
    context.on("page", lambda page: page.on("websocket", lambda ws: sockets.append(ws.url)))
    lab = context.new_page()
    log_in(lab, hub.url, student, "class-password")
    start_from_spawn_form(lab, starter="react-vite")
    wait_for_lab(lab)
    dismiss_news_prompt(lab)
    server_url = hub.server_url(student)
    dev, output = open_terminal(lab, server_url)
    dev.run("npm install --no-audit --no-fund && npm run dev")
    output.wait_for_event(
        "framereceived", lambda frame: "ready in" in str(frame), timeout=NPM_TIMEOUT_MS
    )
    preview = open_preview_tile(lab)
    expect(preview.get_by_role("heading", level=1)).to_have_text(STARTER_HEADING)
    return {
        "context": context,
        "lab": lab,
        "preview": preview,
        "url": preview.url,
        "origin": re.match(r"https?://[^/]+", preview.url).group(0),
        "server_url": server_url,
        "sent": sent,
        "sockets": sockets,
    }


def edit_arrives_by_hot_reload(vite_app: dict, heading: str) -> None:
    """Count to two in the app, save a new heading as JupyterLab's editor saves it, and
    see it arrive on the same page, React's state kept, over Vite's websocket."""
    preview, lab = vite_app["preview"], vite_app["lab"]
    counter = preview.get_by_role("button", name=re.compile("clicked"))
    for _ in range(2):
        counter.click()
    expect(counter).to_have_text("clicked 2 times")
    preview.evaluate("window.codepilotSamePage = true")  # gone if the page reloads

    app_jsx = f"{vite_app['server_url']}api/contents/src/App.jsx"
    model = json.loads(fetch_in_page(lab, "GET", app_jsx)["text"])
    edited = model["content"].replace(STARTER_HEADING, heading)
    body = json.dumps({"type": "file", "format": "text", "content": edited})
    saved = fetch_in_page(lab, "PUT", app_jsx, {"Content-Type": "application/json"}, body)
    assert saved["status"] == 200, saved

    expect(preview.get_by_role("heading", level=1)).to_have_text(heading, timeout=UI_TIMEOUT_MS)
    assert preview.evaluate("window.codepilotSamePage") is True, "the preview page reloaded"
    expect(counter).to_have_text("clicked 2 times")  # React kept its state
    origin = vite_app["origin"]
    host = urlsplit(origin).netloc
    assert any(url.startswith(f"{socket_scheme(origin)}://{host}/") for url in vite_app["sockets"])
