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
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect

from ..hubtools import start_hub, wait_until
from ..s3server import s3_server_fixture
from ..support.terminals import run_in_terminal
from .accessibility import serious_violations
from .conftest import HUB
from .lab import (
    UI_TIMEOUT_MS,
    dismiss_news_prompt,
    fetch_in_page,
    log_in,
    start_from_spawn_form,
    wait_for_lab,
)

pytestmark = pytest.mark.browser

BUCKET = "classroom"
PREFIX = "course"
STUDENT = "ada"
PASSWORD = "class-password"  # what tests/hubtools.start_hub sets
ALLOWED_LEVELS = "owner,authenticated"
# Sync retries back off up to 5 s and the status is polled every 3 s; the notification of
# a failing S3 waits 20 s. Generous bounds for a noisy machine, not measurements.
SYNC_TIMEOUT_MS = 90_000

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
    start_from_spawn_form(page, template="")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return page


def sync_item(page: Page):
    return page.locator("#jp-main-statusbar .jp-codepilot-SyncStatus")


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


def test_sync_item_says_synced(lab, lab_hub, evidence):
    item = sync_item(lab)
    expect(item).to_have_text("S3: synced", timeout=SYNC_TIMEOUT_MS)
    tooltip = item.get_attribute("title")
    assert f"s3://{BUCKET}/{PREFIX}/users/{STUDENT}/default" in tooltip, tooltip
    evidence.screenshot(lab, "labextension-01-synced")


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
            # The count rises as the watcher sees each file: wait until the three files
            # (and their folder) are all pending, not only the first one seen.
            expect(item).to_have_text(
                re.compile(r"^S3: (offline \u2014 ([3-9]|[1-9]\d+) pending|stalled)$"),
                timeout=SYNC_TIMEOUT_MS,
            )
            assert "Last error" in item.get_attribute("title")
            # A student who never looks at the status bar is told, once.
            expect(toast).to_have_count(1, timeout=SYNC_TIMEOUT_MS)
            expect(toast).to_contain_text("S3")
            evidence.screenshot(lab, "labextension-02-s3-down")
        expect(item).to_have_text("S3: synced", timeout=SYNC_TIMEOUT_MS)
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
    start_from_spawn_form(page, template="")
    wait_for_lab(page)
    # The preview item proves the extension ran; the sync item has had its answer...
    expect(preview_item(page)).to_have_text("Preview: only me", timeout=UI_TIMEOUT_MS)
    wait_until(lambda: sync_replies, UI_TIMEOUT_MS / 1000, message="the sync item's first poll")
    assert sync_replies[0].json()["storage"] == "local"
    # ...and, in local mode, never shows.
    expect(sync_item(page)).to_have_count(1)
    expect(sync_item(page)).to_be_hidden()
    assert urlparse(page.url).path.startswith("/user/bob/")
