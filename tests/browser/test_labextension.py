"""The JupyterLab extension @codepilot/lab in real Chromium, against the real hub and S3.

One hub with workspaces in S3 (moto behind a relay that can simulate an outage) and
preview share levels limited to "owner" and "authenticated" by the admin. The student
watches sync in the status bar, is told when S3 is down, and sets who can open the
preview from its panel.
"""

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from codepilot_contracts.porthosts import port_url

from ..support.hubtools import start_hub, wait_until
from ..support.s3server import s3_server_fixture
from ..support.terminals import run_in_terminal
from .accessibility import serious_violations
from .conftest import HUB
from .lab import (
    UI_TIMEOUT_MS,
    Terminal,
    dismiss_news_prompt,
    fetch_in_page,
    fill_login_form,
    log_in,
    make_terminal_readable,
    start_from_spawn_form,
    wait_for_lab,
)

pytestmark = pytest.mark.browser

BUCKET = "classroom"
PREFIX = "course"
STUDENT = "ada"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
ALLOWED_LEVELS = "owner,authenticated"
# Sync retries back off up to 5 s and the status is polled every 3 s; the notification of
# a failing S3 waits 20 s. Generous bounds for a noisy machine, not measurements.
SYNC_TIMEOUT_MS = 90_000
# A logout reaches the servers of this hub within a second, not 5 minutes.
SHORT_AUTH_CACHE = Path(__file__).parent / "short_auth_cache.py"

s3 = s3_server_fixture(buckets=(BUCKET,))


@pytest.fixture(scope="module")
def lab_hub(request, s3):
    hub = start_hub(
        env={
            **s3.env,
            "CODEPILOT_S3_BUCKET": BUCKET,
            "CODEPILOT_S3_PREFIX": PREFIX,
            "CODEPILOT_S3_ENDPOINT_URL": s3.endpoint_url,
            "CODEPILOT_PREVIEW_SHARE_LEVELS": ALLOWED_LEVELS,
            "CODEPILOT_HUB_EXTRA_CONFIG": str(SHORT_AUTH_CACHE),
        }
    )
    request.config.stash[HUB] = hub
    yield hub
    hub.stop()
    if request.config.stash.get(HUB, None) is hub:  # the local-mode test's hub may follow
        del request.config.stash[HUB]


@pytest.fixture(scope="module")
def lab(lab_hub, new_context) -> Page:
    """Ada's JupyterLab, started from the spawn form with an empty workspace."""
    context = new_context(STUDENT)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    log_in(page, lab_hub.url, STUDENT, PASSWORD)
    start_from_spawn_form(page, starter="")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return page


def sync_item(page: Page):
    return page.locator("#jp-main-statusbar .jp-codepilot-SyncStatus")


def sync_word(page: Page):
    """What the sync item shows: Saved, Saving…, Not saved or Signed out."""
    return sync_item(page).locator(".jp-codepilot-SyncStatus-text")


def preview_item(page: Page):
    return page.locator("#jp-main-statusbar .jp-codepilot-PreviewStatus")


def preview_api(page: Page, server_url: str) -> dict:
    """The preview model as the server states it, read with the page's own session."""
    reply = fetch_in_page(page, "GET", f"{server_url}codepilot/api/preview")
    assert reply["status"] == 200, f"GET codepilot/api/preview: {reply}"
    return json.loads(reply["text"])


# --- build and install ---------------------------------------------------------------------


def test_the_extension_is_installed_and_enabled():
    """`make install` (editable) put the prebuilt extension where JupyterLab finds it."""
    listing = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert re.search(r"@codepilot/lab v\S+ enabled OK \(python, codepilot\)", text), text


# --- sync state in the status bar ------------------------------------------------------------


def test_sync_item_says_saved_and_opens_its_detail_from_the_keyboard(lab, lab_hub, evidence):
    item = sync_item(lab)
    expect(sync_word(lab)).to_have_text("Saved", timeout=SYNC_TIMEOUT_MS)
    location = f"s3://{BUCKET}/{PREFIX}/users/{STUDENT}/default"
    assert location in item.get_attribute("title")
    # A button with a name that says what the word is about, reached by the keyboard.
    expect(lab.get_by_role("button", name="Your files: Saved")).to_have_count(1)
    detail = lab.get_by_role("dialog", name="Saving your files")
    for key in ("Enter", " "):
        item.focus()
        lab.keyboard.press(key)
        expect(detail).to_be_visible()
        expect(detail).to_contain_text(location)
        expect(item).to_have_attribute("aria-expanded", "true")
        if key == "Enter":
            evidence.screenshot(lab, "labextension-01-saved-detail")
            assert serious_violations(lab, ".jp-codepilot-SyncDetail") == []
        lab.keyboard.press("Escape")
        expect(detail).to_have_count(0)
        expect(item).to_be_focused()  # the keyboard is back where it was
    assert serious_violations(lab, ".jp-codepilot-SyncStatus") == []


def test_sync_item_counts_pending_and_warns_while_s3_is_down(lab, lab_hub, s3, evidence):
    item = sync_item(lab)
    toast = lab.locator(".Toastify__toast", has_text="Workspace sync")
    token = lab_hub.user_token(STUDENT)
    with lab_hub.open_terminal(STUDENT, token) as terminal:
        with s3.outage():
            # As `git clone` or `unzip` would: a folder and files made in a terminal.
            run_in_terminal(
                terminal,
                "mkdir -p offline && for i in 1 2 3; do echo $i > offline/f$i.txt; done; "
                "echo MADE-$((6*7))",
                "MADE-42",
            )
            expect(sync_word(lab)).to_have_text("Not saved", timeout=SYNC_TIMEOUT_MS)
            # The count rises as the watcher sees each file: wait until the three files
            # (and their folder) are all pending, not only the first one seen.
            expect(item).to_have_attribute(
                "title", re.compile(r"\b([3-9]|[1-9]\d+) changes waiting"), timeout=SYNC_TIMEOUT_MS
            )
            assert "Last error" in item.get_attribute("title")
            # A student who never looks at the status bar is told, once.
            expect(toast).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
            expect(toast).to_contain_text("S3")
            evidence.screenshot(lab, "labextension-02-s3-down")
        expect(sync_word(lab)).to_have_text("Saved", timeout=SYNC_TIMEOUT_MS)
    # The same notification now says sync is back, and nothing was lost.
    expect(toast).to_contain_text("back", timeout=UI_TIMEOUT_MS)
    keys = s3.keys(BUCKET, f"{PREFIX}/users/{STUDENT}/default/offline/")
    assert {f"{PREFIX}/users/{STUDENT}/default/offline/f{i}.txt" for i in (1, 2, 3)} <= keys


# --- the preview: link, copy, share level ------------------------------------------------


def test_preview_item_opens_the_panel_with_the_link(lab, lab_hub, evidence):
    server_url = lab_hub.server_url(STUDENT)
    model = preview_api(lab, server_url)
    url = model["url"]
    assert re.fullmatch(r"http://[a-z0-9-]+\.preview\.localhost:\d+/", url), url

    item = preview_item(lab)
    expect(item).to_have_text("Preview: only me", timeout=UI_TIMEOUT_MS)
    item.click()
    panel = lab.locator("#codepilot-preview")
    expect(panel).to_be_visible()
    expect(panel.locator(".jp-codepilot-Preview-url")).to_have_text(url)
    open_link = panel.get_by_role("link", name="Open")
    assert open_link.get_attribute("href") == url
    assert open_link.get_attribute("target") == "_blank"
    assert set(open_link.get_attribute("rel").split()) >= {"noopener", "noreferrer"}

    panel.get_by_role("button", name="Copy link").click()
    expect(panel.get_by_role("button", name="Copied")).to_be_visible()
    assert lab.evaluate("navigator.clipboard.readText()") == url

    # Levels the admin does not allow cannot be picked.
    select = panel.locator("select.jp-codepilot-Preview-share")
    expect(select).to_have_value("owner")
    assert select.locator("option[value=public]").is_disabled()
    assert not select.locator("option[value=authenticated]").is_disabled()
    expect(select.locator("option")).to_have_text(
        ["Only me", "Anyone in this class", "Anyone with the link"]
    )
    evidence.screenshot(lab, "labextension-03-preview-panel")
    # What the extension adds reads well: the panel and its status bar item.
    assert serious_violations(lab, "#codepilot-preview") == []
    assert serious_violations(lab, ".jp-codepilot-PreviewStatus") == []


def test_open_reaches_the_preview_origin_without_a_handle_on_the_ide(lab, lab_hub):
    url = preview_api(lab, lab_hub.server_url(STUDENT))["url"]
    panel = lab.locator("#codepilot-preview")
    with lab.context.expect_page() as opened:
        panel.get_by_role("link", name="Open").click()
    preview = opened.value
    preview.wait_for_load_state()
    # After the sign-in redirects, the tab is on the preview's own origin...
    expect(preview).to_have_url(re.compile("^" + re.escape(url)), timeout=UI_TIMEOUT_MS)
    # ...and the student's code there cannot reach back into the IDE's tab.
    assert preview.evaluate("window.opener") is None
    preview.close()


def test_share_level_changes_through_the_api_and_survives_a_reload(lab, lab_hub, evidence):
    server_url = lab_hub.server_url(STUDENT)
    panel = lab.locator("#codepilot-preview")
    select = panel.locator("select.jp-codepilot-Preview-share")
    with lab.expect_request(
        # JupyterLab adds a cache-busting query to every API request.
        lambda r: r.method == "PUT" and urlparse(r.url).path.endswith("/codepilot/api/preview")
    ) as put:
        select.select_option("authenticated")
    assert put.value.post_data_json == {"share": "authenticated"}
    expect(preview_item(lab)).to_have_text("Preview: class", timeout=UI_TIMEOUT_MS)
    expect(panel.locator(".jp-codepilot-Preview-explanation")).to_have_text(
        "Anyone logged in to this hub."
    )
    assert preview_api(lab, server_url)["share"] == "authenticated"

    lab.reload()
    wait_for_lab(lab)
    expect(preview_item(lab)).to_have_text("Preview: class", timeout=UI_TIMEOUT_MS)
    # The palette command opens the panel too.
    lab.keyboard.press("Control+Shift+c")
    palette_input = lab.locator(".lm-CommandPalette-input")
    palette_input.fill("Show Link and Sharing")
    lab.locator(".lm-CommandPalette-item", has_text="Preview: Show Link and Sharing").click()
    expect(panel).to_be_visible()
    expect(select).to_have_value("authenticated")
    evidence.screenshot(lab, "labextension-04-after-reload")


def test_a_refused_level_shows_the_servers_message_and_changes_nothing(lab, lab_hub):
    panel = lab.locator("#codepilot-preview")
    select = panel.locator("select.jp-codepilot-Preview-share")
    # A stale page (the admin narrowed the levels since it loaded) offers "public".
    select.evaluate("s => { s.querySelector('option[value=public]').disabled = false; }")
    select.select_option("public")
    message = panel.locator(".jp-codepilot-Preview-message")
    expect(message).to_contain_text("Not changed:", timeout=UI_TIMEOUT_MS)
    expect(select).to_have_value("authenticated")
    expect(preview_item(lab)).to_have_text("Preview: class")
    assert preview_api(lab, lab_hub.server_url(STUDENT))["share"] == "authenticated"


# --- a running app: told once per run, terminal links to it open the preview -------------


def next_app_answer(page: Page) -> dict:
    """The next answer to the tab's own `GET codepilot/api/app` (polled every 3 s)."""
    with page.expect_response(
        lambda r: urlparse(r.url).path.endswith("/codepilot/api/app"), timeout=UI_TIMEOUT_MS
    ) as reply:
        pass
    return reply.value.json()


def wait_for_app_answers(page: Page, listening: bool, count: int) -> dict:
    """Wait for ``count`` answers in a row that say ``listening``; the last one."""
    seen = 0
    while seen < count:
        answer = next_app_answer(page)
        seen = seen + 1 if answer["listening"] is listening else 0
    return answer


def expect_preview_tab(opened, url: str) -> None:
    """The tab ``opened`` shows ``url`` on the preview's origin and has no handle on the IDE."""
    preview = opened.value
    preview.wait_for_load_state()
    expect(preview).to_have_url(url, timeout=UI_TIMEOUT_MS)  # after the sign-in redirects
    assert preview.evaluate("window.opener") is None
    preview.close()


def test_a_started_app_is_announced_once_per_run(lab, lab_hub, evidence):
    preview_url = preview_api(lab, lab_hub.server_url(STUDENT))["url"]
    toast = lab.locator(".Toastify__toast", has_text="Your app is running on port")
    start_app = "python3 -m http.server $PORT --bind 127.0.0.1"
    with lab_hub.open_terminal(STUDENT, lab_hub.user_token(STUDENT)) as terminal:
        wait_for_app_answers(lab, listening=False, count=1)  # nothing runs yet
        run_in_terminal(terminal, start_app, "Serving HTTP")
        expect(toast).to_have_count(1, timeout=UI_TIMEOUT_MS)
        port = next_app_answer(lab)["port"]
        expect(toast).to_contain_text(f"Your app is running on port {port}")
        evidence.screenshot(lab, "labextension-05-app-running")
        with lab.context.expect_page() as opened:
            toast.get_by_role("button", name="Open preview").click()
        expect_preview_tab(opened, preview_url)
        # Once per run: later answers that it still listens tell nothing new.
        expect(toast).to_have_count(0)
        wait_for_app_answers(lab, listening=True, count=2)
        expect(toast).to_have_count(0)

        # Stopped and started again: a new run, told again.
        run_in_terminal(terminal, "\x03", "exiting")
        wait_for_app_answers(lab, listening=False, count=2)
        run_in_terminal(terminal, start_app, "Serving HTTP")
        expect(toast).to_have_count(1, timeout=UI_TIMEOUT_MS)
        run_in_terminal(terminal, "\x03", "exiting")


def test_an_app_that_ignores_port_is_previewed_and_other_ports_are_offered(lab, lab_hub, evidence):
    """Vite's default port (5173) instead of PORT: told and previewed all the same; a
    second app on 8000 is listed in the Preview panel with a link to its own origin."""
    preview_url = preview_api(lab, lab_hub.server_url(STUDENT))["url"]
    toast = lab.locator(".Toastify__toast", has_text="Your app is running on port 5173")
    apps = (
        "python3 -m http.server 8000 --bind 127.0.0.1 & "
        "python3 -m http.server 5173 --bind 127.0.0.1"
    )
    quiet = 0
    while quiet < 2:  # the last run's end, as the tab sees it: a new run is told again
        quiet = quiet + 1 if next_app_answer(lab)["app_port"] is None else 0
    with lab_hub.open_terminal(STUDENT, lab_hub.user_token(STUDENT)) as terminal:
        run_in_terminal(terminal, apps, "port 5173")
        expect(toast).to_have_count(1, timeout=UI_TIMEOUT_MS)
        preview_item(lab).click()
        panel = lab.locator("#codepilot-preview")
        link = panel.get_by_role("link", name="Port 8000")
        expect(link).to_have_attribute("href", port_url(preview_url, 8000), timeout=UI_TIMEOUT_MS)
        expect(panel.locator(".jp-codepilot-Preview-port")).to_have_count(1)  # not 5173: shown
        assert set(link.get_attribute("rel").split()) >= {"noopener", "noreferrer"}
        evidence.screenshot(lab, "labextension-07-other-ports")
        with lab.context.expect_page() as opened:
            link.click()
        expect_preview_tab(opened, port_url(preview_url, 8000))
        with lab.context.expect_page() as opened:
            toast.get_by_role("button", name="Open preview").click()
        expect_preview_tab(opened, preview_url)  # the main preview, showing 5173's app
        run_in_terminal(terminal, "\x03", "exiting")
        run_in_terminal(terminal, "kill %1; echo KILLED$((6*7))", "KILLED42")
    expect(panel.locator(".jp-codepilot-Preview-port")).to_have_count(0, timeout=UI_TIMEOUT_MS)


def test_terminal_links_to_the_app_open_the_preview(lab, lab_hub, evidence):
    server_url = lab_hub.server_url(STUDENT)
    preview_url = preview_api(lab, server_url)["url"]
    other_port = urlparse(lab_hub.url).port  # the hub's: another local port
    make_terminal_readable(lab, server_url)
    lab.reload()  # JupyterLab reads the setting as it loads
    wait_for_lab(lab)
    terminal = Terminal.open_from_launcher(lab)
    # The app on PORT and a second one on 8000, whose links open its own preview.
    terminal.run_and_wait(
        "for port in $PORT 8000; do python3 -m http.server $port --bind 127.0.0.1"
        " >/dev/null 2>&1 & done; echo APPS-$((6*7))",
        "APPS-42",
    )

    def both_listen() -> bool:
        answer = next_app_answer(lab)
        return answer["listening"] and 8000 in {p["port"] for p in answer["ports"]}

    wait_until(both_listen, 60, 0, "the app on PORT and the one on 8000 listed")
    terminal.run_and_wait(
        f"printf '%s\\n' \"http://127.0.0.1:$PORT/x?y=1\" http://127.0.0.1:{other_port}/hub/api/"
        " http://localhost:8000/z; echo LINKS-$((6*7))",
        "LINKS-42",
    )
    rows = terminal.lines()
    screen = terminal.panel.locator(".xterm-screen")
    box = screen.bounding_box()

    def click_link(prefix: str):
        """Hover the link that starts the row starting with ``prefix``, then click it."""
        row = next(i for i, line in enumerate(rows) if line.startswith(prefix))
        x, y = box["x"] + 30, box["y"] + (row + 0.5) * box["height"] / len(rows)
        lab.mouse.move(x, y)
        # xterm.js has found the link under the pointer.
        expect(terminal.panel.locator(".xterm-screen.xterm-cursor-pointer")).to_have_count(1)
        with lab.context.expect_page() as opened:
            lab.mouse.click(x, y)
        lab.mouse.move(box["x"] + box["width"] - 5, box["y"] + 5)  # off the link
        return opened

    # A dev server's "http://127.0.0.1:3000/...": the preview at that path.
    port = json.loads(fetch_in_page(lab, "GET", f"{server_url}codepilot/api/app")["text"])["port"]
    expect_preview_tab(click_link(f"http://127.0.0.1:{port}/"), f"{preview_url}x?y=1")
    # Another port: the link as it is, in a new tab as before.
    other = click_link(f"http://127.0.0.1:{other_port}/").value
    expect(other).to_have_url(f"http://127.0.0.1:{other_port}/hub/api/")
    assert other.evaluate("window.opener") is None
    other.close()
    # Another port of the server: that port's own preview, at the link's path.
    expect_preview_tab(click_link("http://localhost:8000/"), f"{port_url(preview_url, 8000)}z")
    terminal.run_and_wait("kill %1 %2; echo STOPPED-$((6*7))", "STOPPED-42")
    evidence.screenshot(lab, "labextension-06-terminal-links")


# --- a session that ended in another tab (last: it signs the lab page out and back in) ------


def test_logged_out_in_another_tab_the_items_offer_to_sign_in_again(lab, lab_hub, evidence):
    """The hub's logout revokes the token the tab uses; its server learns it when its cache
    of the hub's answer expires (here after a second: SHORT_AUTH_CACHE)."""
    other = lab.context.new_page()
    other.goto(f"{lab_hub.url}/hub/logout")
    other.wait_for_url(re.compile(r"/hub/login"))
    other.close()

    expect(sync_word(lab)).to_have_text("Signed out", timeout=SYNC_TIMEOUT_MS)
    assert "Forbidden" not in sync_item(lab).get_attribute("title")
    sync_item(lab).click()
    detail = lab.get_by_role("dialog", name="Saving your files")
    expect(detail).to_contain_text("Your session ended")
    sign_in = detail.get_by_role("link", name="Sign in again")
    lab_path = urlparse(lab.url).path
    login = urlparse(sign_in.get_attribute("href"))
    assert login.path == "/hub/login"
    assert urlparse(parse_qs(login.query)["next"][0]).path == lab_path
    evidence.screenshot(lab, "labextension-07-signed-out")

    # The preview panel says the same, not "Forbidden".
    preview_item(lab).click()
    message = lab.locator("#codepilot-preview .jp-codepilot-Preview-message")
    expect(message).to_contain_text("Your session ended", timeout=UI_TIMEOUT_MS)
    expect(message).not_to_contain_text("Forbidden")
    expect(message.get_by_role("link", name="Sign in again")).to_be_visible()

    # The link signs in and comes back to this lab, which saves again.
    sync_item(lab).click()
    detail.get_by_role("link", name="Sign in again").click()
    lab.wait_for_url(re.compile(r"/hub/login"))
    fill_login_form(lab, STUDENT, PASSWORD, new=False)
    wait_for_lab(lab)
    assert urlparse(lab.url).path == lab_path
    expect(sync_word(lab)).to_have_text("Saved", timeout=SYNC_TIMEOUT_MS)


def test_sync_item_is_hidden_in_local_mode(browser_hub, new_context):
    """The default hub keeps workspaces on local disk: no S3 state to show."""
    page = new_context("bob").new_page()
    sync_replies = []
    page.on(
        "response",
        lambda r: (
            sync_replies.append(r) if urlparse(r.url).path.endswith("/codepilot/api/sync") else None
        ),
    )
    log_in(page, browser_hub.url, "bob", PASSWORD)
    start_from_spawn_form(page, starter="")
    wait_for_lab(page)
    # The preview item proves the extension ran; the sync item has had its answer...
    expect(preview_item(page)).to_have_text("Preview: only me", timeout=UI_TIMEOUT_MS)
    wait_until(lambda: sync_replies, UI_TIMEOUT_MS / 1000, message="the sync item's first poll")
    assert sync_replies[0].json()["storage"] == "local"
    # ...and, in local mode, never shows.
    expect(sync_item(page)).to_have_count(1)
    expect(sync_item(page)).to_be_hidden()
    assert urlparse(page.url).path.startswith("/user/bob/")
