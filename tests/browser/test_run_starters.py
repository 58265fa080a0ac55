"""The Run button on each starter but Flask (``test_run_button.py``), in real Chromium, one
named server per starter: the student presses Run, the Run panel shows the app's output
(a Node starter's first Run shows npm installing its packages), the preview shows the
app, an edit shows (an answer typed into the Run panel, node's watcher, Vite's hot
reload), and Stop ends every process of the run (checked from /proc).

npm installs from a copy of the tests' npm cache in the student's home, as for a student
who installed these packages before: the real command and its real output, in seconds.
"""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from server_extension.run.processes import descendants

from ..support.hubtools import wait_until
from ..support.npmcache import fill_npm_cache, give_npm_cache
from ..support.procfs import alive
from .lab import (
    NPM_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    add_named_server,
    dismiss_news_prompt,
    fetch_in_page,
    log_in,
    make_terminal_readable,
    wait_for_lab,
)
from .test_first_minutes import preview_url
from .test_run_button import PASSWORD, run_model, run_panel, status_item, top_button
from .vite_run import STARTER_HEADING, edit_arrives_by_hot_reload

pytestmark = pytest.mark.browser

STUDENT = "nadia"


@pytest.fixture(scope="module")
def npm_cache():
    for starter in ("node-express", "react-vite"):
        fill_npm_cache(starter)


@pytest.fixture(scope="module")
def student(plain_hub, new_context) -> Page:
    """Nadia logged in to the hub; each test opens a named server from a starter."""
    page = new_context(STUDENT).new_page()
    log_in(page, plain_hub.url, STUDENT, PASSWORD)
    return page


def open_starter(page: Page, hub, starter: str) -> str:
    """A named server called as ``starter``, started from it; its JupyterLab on ``page``,
    the Run panel's terminal readable. Returns the server's URL."""
    add_named_server(page, hub.url, starter, starter)
    wait_for_lab(page)
    server_url = hub.server_url(STUDENT, starter)
    # The run's terminal takes the terminal settings JupyterLab had when it opened.
    make_terminal_readable(page, server_url)
    page.goto(f"{server_url}lab")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return server_url


def student_home(hub) -> Path:
    return hub.data_dir / "homes" / STUDENT


def save_file(page: Page, server_url: str, path: str, edit) -> None:
    """Save ``edit(text)`` over ``path`` as JupyterLab's editor saves it."""
    url = f"{server_url}api/contents/{path}"
    model = json.loads(fetch_in_page(page, "GET", url)["text"])
    body = json.dumps({"type": "file", "format": "text", "content": edit(model["content"])})
    reply = fetch_in_page(page, "PUT", url, {"Content-Type": "application/json"}, body)
    assert reply["status"] == 200, reply


def run_processes(page: Page, server_url: str, number: int) -> list[int]:
    """The processes of run ``number``, once the server has started it (Run's request
    may still be on its way when its panel shows the last run's words)."""

    def started():
        model = run_model(page, server_url)
        run = model["run"] or {}
        return run.get("number") == number and model["state"] != "stopped" and model["pid"]

    return descendants(wait_until(started, UI_TIMEOUT_MS / 1000, 0.2, f"run {number}"))


def stop_ends_every_process(page: Page, server_url: str, members: list[int]) -> None:
    top_button(page, "stop").click()
    expect(status_item(page)).to_have_text("▶ Stopped", timeout=UI_TIMEOUT_MS)
    assert [member for member in members if alive(member)] == []


def open_preview(page: Page, hub, server: str) -> Page:
    preview = page.context.new_page()
    preview.goto(preview_url(hub, STUDENT, server))
    return preview


def test_python_asks_in_the_run_panel_and_an_edit_shows_on_the_next_run(student, plain_hub):
    server_url = open_starter(student, plain_hub, "python")
    top_button(student, "run").click()
    panel = run_panel(student)
    panel.wait_for_text("What is your name?")
    # Stop while the program waits for its answer.
    stop_ends_every_process(student, server_url, run_processes(student, server_url, 1))

    def edit(text: str) -> str:
        return text.replace("What is your name?", "Who is there?").replace("Hello", "Welcome")

    save_file(student, server_url, "main.py", edit)
    top_button(student, "run").click()
    panel.wait_for_text("Who is there?")
    # The Run panel is the program's terminal: typing there answers it.
    panel.run("Nadia")
    panel.wait_for_text("Welcome, Nadia!")
    expect(status_item(student)).to_have_text("▶ Stopped", timeout=UI_TIMEOUT_MS)


def first_node_run(page: Page, hub, starter: str, ready: str | re.Pattern):
    """Open ``starter``, press Run: npm installs the starter's packages, the Run panel
    shows the app's ``ready`` words, and the status says Running. The server's URL and
    panel."""
    server_url = open_starter(page, hub, starter)
    give_npm_cache(student_home(hub))
    top_button(page, "run").click()
    panel = run_panel(page)
    panel.wait_for_text(ready, timeout=NPM_TIMEOUT_MS)
    expect(status_item(page)).to_have_text("▶ Running", timeout=UI_TIMEOUT_MS)
    # The install is read from the workspace, not the panel: Vite clears the screen
    # (and its scrollback) as it starts, taking npm's summary with it.
    manifest = json.loads(
        fetch_in_page(page, "GET", f"{server_url}api/contents/package.json")["text"]
    )
    for package in json.loads(manifest["content"])["dependencies"]:
        installed = fetch_in_page(
            page, "GET", f"{server_url}api/contents/node_modules/{package}/package.json"
        )
        assert installed["status"] == 200, (package, installed["status"])
    return server_url, panel


def test_express_first_run_installs_then_serves_and_restarts_on_edit(student, plain_hub, npm_cache):
    server_url, panel = first_node_run(
        student, plain_hub, "node-express", "Listening on http://127.0.0.1:"
    )
    preview = open_preview(student, plain_hub, "node-express")
    heading = preview.get_by_role("heading", level=1)
    expect(heading).to_have_text("Hello from Express")

    # `npm run dev` is `node --watch index.js`: a save restarts the app by itself.
    save_file(student, server_url, "index.js", lambda text: text.replace("Hello from", "Saved in"))
    panel.wait_for_text("Restarting 'index.js'")

    def reloaded() -> bool:
        preview.reload()
        return heading.text_content() == "Saved in Express"

    wait_until(reloaded, UI_TIMEOUT_MS / 1000, 0.5, "the edited page")
    preview.close()
    members = run_processes(student, server_url, 1)
    assert len(members) >= 3, members  # bash, npm, node's watcher and the app it runs
    stop_ends_every_process(student, server_url, members)


# npm install, Vite's first start and a hot reload: past 300 s on a loaded machine.
@pytest.mark.timeout(600)
def test_react_vite_first_run_installs_then_hot_reloads(student, plain_hub, npm_cache):
    ready = re.compile(r"VITE v\S+\s+ready in")
    server_url, _ = first_node_run(student, plain_hub, "react-vite", ready)

    preview = student.context.new_page()
    sockets = []
    preview.on("websocket", lambda socket: sockets.append(socket.url))
    preview.goto(preview_url(plain_hub, STUDENT, "react-vite"))
    expect(preview.get_by_role("heading", level=1)).to_have_text(STARTER_HEADING)
    origin = re.match(r"https?://[^/]+", preview.url).group(0)
    vite_app = {"preview": preview, "lab": student, "server_url": server_url}
    edit_arrives_by_hot_reload(
        {**vite_app, "origin": origin, "sockets": sockets}, "Hot reloaded after Run"
    )
    preview.close()
    members = run_processes(student, server_url, 1)
    assert len(members) >= 3, members  # bash, npm, vite and its esbuild service
    stop_ends_every_process(student, server_url, members)
