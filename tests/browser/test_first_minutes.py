"""A student's first five minutes, and an admin's, in real Chromium against the real hub.

The tests run in order and share one hub, one browser and one student ("ada"), as one
session of a person would: log in and start, open the lab, run an app and preview it,
edit files, then an admin and a second student look on.
"""

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from codepilot_spawner.services.preview.hosts import PreviewDomain

from ..support.hubtools import wait_until
from .lab import (
    FILE_EDITOR,
    NPM_TIMEOUT_MS,
    SPAWN_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    SpawnProgress,
    Terminal,
    add_named_server,
    dismiss_news_prompt,
    dock_tab,
    drag_tab_to_bottom,
    fetch_in_page,
    file_browser_item,
    lab_page_config,
    launcher_card,
    log_in,
    make_terminal_readable,
    new_text_file,
    open_file_in_editor,
    open_preview_tile,
    replace_in_editor,
    show_launcher,
    start_from_spawn_form,
    wait_for_lab,
)
from .screenshot import README_SCREENSHOT, should_update_readme_screenshot, side_by_side

pytestmark = pytest.mark.browser

STUDENT = "ada"
OTHER_STUDENT = "grace"
CLASSMATE = "linus"  # the user whose server the admin starts and stops
STUDENT_PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets

INDEX_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>My first app</title>
<link rel="stylesheet" href="style.css"></head>
<body><h1>Hello from Code Pilot</h1>
<p id="status">Loading...</p>
<script src="./app.js"></script></body></html>
"""
STYLE_CSS = "h1 { color: rgb(211, 54, 130); }"
APP_JS = 'document.getElementById("status").textContent = "JavaScript ran in the preview";'

# What a spawn page must never show a student.
CONFUSING = re.compile(r"Traceback|Exception|Error:|undefined|null", re.I)


@dataclass
class Student:
    name: str
    context: BrowserContext
    page: Page
    server_url: str
    workspace: Path
    progress: SpawnProgress
    preview: Page | None = None
    terminals: dict[str, Terminal] = field(default_factory=dict)

    def lab(self) -> Page:
        """The lab tab, brought to the front: background tabs get few animation frames."""
        self.page.bring_to_front()
        return self.page

    def terminal(self, purpose: str) -> Terminal:
        """One terminal tab per purpose ("app", "shell"), opened from the launcher once."""
        if purpose not in self.terminals:
            self.terminals[purpose] = Terminal.open_from_launcher(self.page)
        return self.terminals[purpose]


@pytest.fixture(scope="module")
def student(browser_hub, new_context, evidence) -> Student:
    """Ada logs in and starts her server from the browser, watched by a progress recorder."""
    context = new_context(STUDENT)
    progress = SpawnProgress()
    progress.attach(context)
    page = context.new_page()
    log_in(page, browser_hub.url, STUDENT, STUDENT_PASSWORD)
    start_from_spawn_form(page, starter="")  # an empty workspace
    evidence.screenshot(page, "01-spawn-pending")
    wait_for_lab(page)
    server_url = browser_hub.server_url(STUDENT)
    make_terminal_readable(page, server_url)
    # A fresh layout, with the terminal setting applied.
    page.goto(f"{server_url}lab?reset")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    workspace = browser_hub.data_dir / "workspaces" / STUDENT / "default"
    return Student(STUDENT, context, page, server_url, workspace, progress)


# --- 1. log in and start: the spawn page explains what happens ------------------------


def test_spawn_page_shows_progress_in_plain_words(student):
    events = student.progress.events
    assert events, "the spawn page showed no progress at all"
    assert not any(event["failed"] for event in events), events
    messages = student.progress.messages
    assert all(messages), f"a progress step had no message: {events}"
    for expected in ("Preparing your workspace", "Starting JupyterLab"):
        assert expected in messages, f"{expected!r} not among {messages}"
    assert not [m for m in messages if CONFUSING.search(m)], messages
    percents = student.progress.percents
    assert percents == sorted(percents), f"the bar went backwards: {percents}"
    assert percents[-1] == 100, f"the bar never filled: {percents}"


# --- 2. JupyterLab opens in the workspace with Terminal and Preview -------------------


def test_lab_opens_in_the_workspace_with_terminal_and_preview(student, evidence):
    page = student.lab()
    assert page.url.startswith(f"{student.server_url}lab"), page.url
    assert Path(lab_page_config(page)["serverRoot"]) == student.workspace
    show_launcher(page)
    expect(launcher_card(page, "Terminal")).to_be_visible()
    expect(launcher_card(page, "Preview")).to_be_visible()
    evidence.screenshot(page, "02-lab-launcher")


def test_preview_tile_has_its_icon(student):
    page = student.lab()
    show_launcher(page)
    icon = launcher_card(page, "Preview").locator(".jp-LauncherCard-icon img, svg")
    expect(icon).to_have_count(1, timeout=5_000)


# --- 3. an app in the terminal, seen through the Preview tile -------------------------


def preview_url(hub, user: str, server: str = "") -> str:
    return PreviewDomain("preview.localhost", "http", hub.preview_port).url(user, server)


def test_preview_tile_shows_the_app_started_in_a_terminal(student, browser_hub, evidence):
    page = student.lab()
    app = student.terminal("app")
    app.run("touch served-file.txt && python -m http.server $PORT")
    app.wait_for_text("Serving HTTP on")
    preview = student.preview = open_preview_tile(page)
    # The tile's <server>/preview/ lands on the preview's own origin, signed in.
    assert preview.url == preview_url(browser_hub, STUDENT)
    expect(preview.get_by_role("heading", level=1)).to_have_text("Directory listing for /")
    expect(preview.get_by_role("link", name="served-file.txt")).to_be_visible()
    evidence.screenshot(preview, "03-preview-listing")
    evidence.screenshot(page, "03-terminal-serving")


# --- 4. editor and terminal see the same files ----------------------------------------


def test_file_saved_in_the_editor_is_what_cat_prints(student, evidence):
    page = student.lab()
    new_text_file(page, "index.html", INDEX_HTML)
    shell = student.terminal("shell")
    printed = shell.run_and_wait("cat index.html; echo END-OF-FILE", "END-OF-FILE")
    assert printed.splitlines() == INDEX_HTML.splitlines()
    assert (student.workspace / "index.html").read_text() == INDEX_HTML
    evidence.screenshot(page, "04-cat-after-save")


def test_file_made_in_the_terminal_appears_in_the_file_browser(student, evidence):
    page = student.lab()
    shell = student.terminal("shell")
    shell.run(f"printf '%s\\n' '{STYLE_CSS}' > style.css; printf '%s\\n' '{APP_JS}' > app.js")
    for name in ("style.css", "app.js"):
        # The file browser polls the server; no click on refresh.
        expect(file_browser_item(page, name)).to_be_visible(timeout=UI_TIMEOUT_MS)
    file_browser_item(page, "style.css").dblclick()
    editor = page.locator(FILE_EDITOR)
    expect(editor).to_have_text(STYLE_CSS, timeout=UI_TIMEOUT_MS)
    evidence.screenshot(page, "04-terminal-file-in-browser")


def test_preview_loads_the_pages_own_styles_and_scripts(student, evidence):
    preview = student.preview
    assert preview is not None, "the preview tab did not open"
    failures = []
    preview.on("response", lambda r: r.status >= 400 and failures.append(f"{r.status} {r.url}"))
    preview.bring_to_front()
    preview.reload()
    expect(preview.get_by_role("heading", level=1)).to_have_text("Hello from Code Pilot")
    expect(preview.locator("#status")).to_have_text("JavaScript ran in the preview")
    color = preview.locator("h1").evaluate("h1 => getComputedStyle(h1).color")
    assert color == "rgb(211, 54, 130)", "style.css did not apply"
    assert not failures, failures
    evidence.screenshot(preview, "04-preview-app")


def test_readme_screenshot_of_the_ide_and_its_preview(student, evidence, new_context):
    """The README's picture, taken from the session above: editor and terminal, preview."""
    page, preview = student.lab(), student.preview
    assert preview is not None, "the preview tab did not open"
    dock_tab(page, "index.html").click()
    drag_tab_to_bottom(page, "Terminal 1")
    # Split: the editor and the terminal running the app are both on screen.
    expect(page.locator(".jp-FileEditor:visible")).to_have_count(1)
    expect(page.locator(".jp-Terminal:visible")).to_have_count(1)
    page.set_viewport_size({"width": 1100, "height": 760})
    preview.set_viewport_size({"width": 640, "height": 760})
    page.wait_for_timeout(500)  # let the panels re-lay themselves out after resizing
    ide = evidence.screenshot(page, "05-readme-ide")
    preview.bring_to_front()
    app = evidence.screenshot(preview, "05-readme-preview")
    canvas = new_context("readme").new_page()
    canvas.set_viewport_size({"width": 1800, "height": 900})
    path = side_by_side(
        canvas,
        ide.read_bytes(),
        f"Code Pilot: {urlparse(student.server_url).path}lab",
        app.read_bytes(),
        f"Preview: {urlparse(student.preview.url).netloc}",
        evidence.artifacts_dir / "readme-screenshot.png",
    )
    assert path.stat().st_size > 0
    if should_update_readme_screenshot():
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        README_SCREENSHOT.write_bytes(path.read_bytes())


# --- 5. named servers from starters, with reload on edit ------------------------------


def open_named_server_from_starter(student, hub_url, server_name, starter) -> Page:
    """Hub home -> Add New Server -> pick ``starter`` -> JupyterLab of that server."""
    page = student.context.new_page()
    add_named_server(page, hub_url, server_name, starter)
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return page


def record_failed_responses(page: Page, *origins: str) -> list[str]:
    failed = []
    page.on(
        "response",
        lambda r: (
            r.status >= 400 and r.url.startswith(origins) and failed.append(f"{r.status} {r.url}")
        ),
    )
    return failed


def test_react_vite_starter_preview_hot_reloads(student, browser_hub, evidence):
    server_url = browser_hub.server_url(STUDENT, "web")
    lab = open_named_server_from_starter(student, browser_hub.url, "web", "react-vite")
    assert lab.url.startswith(f"{server_url}lab")
    workspace = browser_hub.data_dir / "workspaces" / STUDENT / "web"
    expect(file_browser_item(lab, "package.json")).to_be_visible()
    dev = Terminal.open_from_launcher(lab)
    dev.run("npm install --no-audit --no-fund && npm run dev")
    dev.wait_for_text(re.compile(r"VITE v\S+\s+ready in"), timeout=NPM_TIMEOUT_MS)
    evidence.screenshot(lab, "05-react-vite-dev-server")

    preview = open_preview_tile(lab)
    assert preview.url == preview_url(browser_hub, STUDENT, "web")  # at /, no base path
    failed = record_failed_responses(preview, server_url, preview.url)
    expect(preview.get_by_role("heading", level=1)).to_have_text("Hello from React + Vite")
    counter = preview.get_by_role("button", name=re.compile("clicked"))
    for _ in range(3):
        counter.click()
    expect(counter).to_have_text("clicked 3 times")
    # Gone if the page reloads: only a hot update keeps it.
    preview.evaluate("window.codepilotSamePage = true")
    evidence.screenshot(preview, "05-react-vite-before-edit")

    app_jsx = workspace / "src" / "App.jsx"
    lab.bring_to_front()
    open_file_in_editor(lab, server_url, "src/App.jsx")
    replace_in_editor(
        lab, app_jsx.read_text().replace("Hello from React + Vite", "Hot reloaded by Vite")
    )
    preview.bring_to_front()  # as a person switching tabs: no reload
    heading = preview.get_by_role("heading", level=1)
    expect(heading).to_have_text("Hot reloaded by Vite", timeout=UI_TIMEOUT_MS)
    assert preview.evaluate("window.codepilotSamePage") is True, "the preview page reloaded"
    expect(counter).to_have_text("clicked 3 times")  # React kept its state
    assert not failed, failed
    evidence.screenshot(preview, "05-react-vite-after-edit")


def test_flask_starter_preview_shows_edits(student, browser_hub, evidence):
    server_url = browser_hub.server_url(STUDENT, "flask-app")
    lab = open_named_server_from_starter(student, browser_hub.url, "flask-app", "flask")
    workspace = browser_hub.data_dir / "workspaces" / STUDENT / "flask-app"
    expect(file_browser_item(lab, "app.py")).to_be_visible()
    dev = Terminal.open_from_launcher(lab)
    # As its README says (Flask comes with the workspace), its output kept for the end.
    dev.run("PYTHONUNBUFFERED=1 python app.py 2>&1 | tee $HOME/flask.log")
    dev.wait_for_text("Debugger is active", timeout=NPM_TIMEOUT_MS)

    preview = open_preview_tile(lab)
    failed = record_failed_responses(preview, server_url, preview.url)
    assert preview.url == preview_url(browser_hub, STUDENT, "flask-app")
    expect(preview.get_by_role("heading", level=1)).to_have_text("Hello from Flask")

    lab.bring_to_front()
    open_file_in_editor(lab, server_url, "app.py")
    app_py = workspace / "app.py"
    replace_in_editor(lab, app_py.read_text().replace("Hello from Flask", "Reloaded by Flask"))
    # Nobody touches the terminal or the preview: Flask's debug reloader restarts the app
    # by itself, and the starter's page notices and reloads.
    preview.bring_to_front()
    expect(preview.get_by_role("heading", level=1)).to_have_text(
        "Reloaded by Flask", timeout=30_000
    )
    assert not failed, failed
    evidence.screenshot(preview, "05-flask-after-edit")
    # One restart, for app.py: not for JupyterLab's checkpoint copy, nor for the room's
    # own save a second after Ctrl+S (the same text, so nothing is written). The page's
    # once-a-second question stays out of the terminal.
    log = browser_hub.data_dir / "homes" / STUDENT / "flask.log"
    wait_until(lambda: "Detected change" in log.read_text(), 30, 0.3, "Flask's restart")
    time.sleep(3)  # a second restart would show by now
    terminal = log.read_text()
    changes = re.findall(r"Detected change in '([^']*)'", terminal)
    assert len(changes) == 1 and changes[0].endswith("/flask-app/app.py"), terminal
    assert "GET /started" not in terminal and "GET / HTTP" in terminal, terminal


# --- 6. the admin panel ---------------------------------------------------------------


def test_admin_starts_and_stops_another_users_server(
    browser_hub, student, new_context, admin_password, evidence
):
    browser_hub.create_user(CLASSMATE)
    page = new_context("admin").new_page()
    log_in(page, browser_hub.url, "admin", admin_password, next_path="/hub/admin")
    page.wait_for_url(re.compile(r"/hub/admin"))
    for name in (STUDENT, CLASSMATE, "admin"):
        expect(page.get_by_test_id(f"user-row-{name}").first).to_be_visible()
    row = page.get_by_test_id(f"user-row-{CLASSMATE}").first
    evidence.screenshot(page, "06-admin-panel")

    row.get_by_role("button", name="Start Server").click()
    stop = row.get_by_role("button", name="Stop Server")
    pending = row.get_by_role("button", name="Server is pending")
    expect(stop.or_(pending)).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
    browser_hub.wait_ready(CLASSMATE, timeout=SPAWN_TIMEOUT_MS / 1000)
    if pending.is_visible():
        # A start slower than the hub's slow_spawn_timeout (10 s: a busy machine) is
        # answered 202, and the admin page shows it pending until it is reloaded.
        page.reload()
    expect(stop).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
    evidence.screenshot(page, "06-admin-started")

    row.get_by_role("button", name="Stop Server").click()
    expect(row.get_by_role("button", name="Start Server")).to_be_visible(timeout=SPAWN_TIMEOUT_MS)

    def stopped():
        return "" not in browser_hub.api("GET", f"/users/{CLASSMATE}").json()["servers"]

    wait_until(stopped, 60, 0.5, f"{CLASSMATE}'s server to stop")
    evidence.screenshot(page, "06-admin-stopped")


# --- 7. a second student cannot get into the first student's server -------------------


@pytest.fixture(scope="module")
def other_student(browser_hub, new_context) -> Page:
    page = new_context(OTHER_STUDENT).new_page()
    # Straight to the hub's home page: whether her own server runs does not matter here.
    log_in(page, browser_hub.url, OTHER_STUDENT, STUDENT_PASSWORD, next_path="/hub/home")
    page.wait_for_url(re.compile(r"/hub/home"))
    return page


@pytest.mark.parametrize("what", ["lab", "lab/terminals/1", "preview/", "api/terminals"])
def test_second_student_cannot_open_the_first_students_server(
    student, other_student, evidence, what
):
    page = other_student
    response = page.goto(f"{student.server_url}{what}")
    page.wait_for_load_state()
    assert response is not None
    body = page.locator("body").inner_text()
    assert response.status == 403, f"{response.status} {page.url}: {body[:500]}"
    assert re.search(r"403|forbidden|not allowed|permission", body, re.I), body[:500]
    # Nothing of the first student's server got through.
    assert page.locator(".jp-LabShell, .jp-Terminal").count() == 0
    assert "Directory listing" not in body and "Hello from Code Pilot" not in body
    evidence.screenshot(page, f"07-denied-{what.strip('/').replace('/', '-')}")


# Opens a websocket from inside a page, as a script of that page could, and reports what
# happened: whether it opened, how many messages came, how it closed.
TRY_WEBSOCKET = """url => new Promise(resolve => {
    const socket = new WebSocket(url);
    const seen = {opened: false, messages: 0};
    socket.onopen = () => { seen.opened = true; };
    socket.onmessage = () => {
        seen.messages += 1;
        resolve({...seen, code: "closed after the first message"});
        socket.close();
    };
    socket.onerror = () => resolve({...seen, code: "error"});
    socket.onclose = event => resolve({...seen, code: event.code});
    setTimeout(() => { socket.close(); resolve({...seen, code: "gave up"}); }, 10000);
})"""


def test_second_student_cannot_attach_to_the_first_students_terminal(
    browser_hub, student, other_student
):
    student.terminal("app")  # opened by the preview test; again here when run alone
    listed = fetch_in_page(student.page, "GET", f"{student.server_url}api/terminals")
    assert listed["status"] == 200, listed
    names = [t["name"] for t in json.loads(listed["text"])]
    socket_url = re.sub(r"^http", "ws", f"{student.server_url}terminals/websocket/{names[0]}")
    # The owner gets through: the terminal exists, so a refusal below is about who asks.
    owner = student.page.evaluate(TRY_WEBSOCKET, socket_url)
    assert owner["opened"] and owner["messages"] > 0, owner
    # From a page of her own on the same origin: the API pages above forbid connections.
    other_student.goto(f"{browser_hub.url}/hub/home")
    intruder = other_student.evaluate(TRY_WEBSOCKET, socket_url)
    assert not intruder["opened"] and intruder["messages"] == 0, intruder
