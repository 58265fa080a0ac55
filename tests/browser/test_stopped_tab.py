"""A project's JupyterLab tab, when its server is stopped under it (by a teacher, the culler
or the API): the tab says so once and goes quiet, instead of retrying against the hub.

The student keeps the default project running too: then the proxy's route to it also
matches the stopped project's URLs, and the stopped tab's requests reach the default server.
"""

from collections import Counter

import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS_DIR
from .lab import UI_TIMEOUT_MS, dismiss_news_prompt, launcher_card, log_in, wait_for_lab
from .tabwatch import request_kind, requests_after

pytestmark = pytest.mark.browser

STUDENT = "ada"
PROJECT = "web"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
WATCH_S = 15
# The tab's one check of its server, and what was already on its way or reconnecting
# before the answer (a terminal's socket, a poll): 1 or 2 when measured. Without the fix,
# 370 to 1,700 in 15 s, nearly all the file browser asking for its folder again.
MAX_REQUESTS = 10

# Counts every dialog JupyterLab adds to the page, with its text: shown once means added once.
DIALOG_COUNTER = """
window.codepilotDialogs = [];
new MutationObserver(records => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.classList && node.classList.contains('jp-Dialog')) {
        window.codepilotDialogs.push(node.textContent);
      }
    }
  }
}).observe(document.body, {childList: true});
"""


@pytest.fixture(scope="module")
def hub(plain_hub):
    return plain_hub


@pytest.fixture(scope="module")
def project_tab(hub, new_context) -> Page:
    """Ada's named project open in JupyterLab, her default project running beside it."""
    hub.create_user(STUDENT)
    hub.start_server(STUDENT)
    hub.start_server(STUDENT, PROJECT)
    page = new_context(STUDENT).new_page()
    log_in(page, hub.url, STUDENT, PASSWORD, next_path=f"/user/{STUDENT}/{PROJECT}/lab")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    # A terminal, as when an app runs: its socket reconnects when the server goes away.
    launcher_card(page, "Terminal").click()
    page.locator(".jp-Terminal .xterm-screen").wait_for(timeout=UI_TIMEOUT_MS)
    return page


def watch_the_stop(page: Page, hub, case: str) -> None:
    """Stop the project under the open tab: in the WATCH_S seconds that follow, the tab
    opens at most MAX_REQUESTS requests and sockets (listed in test-artifacts/) and shows
    one dialog, the one that says the project was stopped."""
    page.evaluate(DIALOG_COUNTER)
    window = requests_after(
        page,
        lambda: hub.stop_server(STUDENT, PROJECT),
        WATCH_S,
        lambda url: request_kind(url, STUDENT, PROJECT),
    )

    report = ARTIFACTS_DIR / f"stopped-tab-{case}-requests.txt"
    report.write_text(
        f"{len(window)} requests in {WATCH_S} s after the stop\n"
        + "".join(f"{count:6} {kind}\n" for kind, count in Counter(window).most_common())
    )
    assert len(window) <= MAX_REQUESTS, report.read_text()
    expect(stopped_dialog(page)).to_have_count(1)
    dialogs = page.evaluate("window.codepilotDialogs")
    assert len(dialogs) == 1, dialogs


def stopped_dialog(page: Page):
    return page.locator(".jp-Dialog", has_text=f"This project ({PROJECT}) was stopped")


def test_stopped_beside_the_default_project_says_so_once_and_restarts(project_tab, hub, evidence):
    """The proxy hands the stopped project's URLs to the default server: 404 pages, which
    made JupyterLab's file browser retry hundreds of times a second."""
    page = project_tab
    watch_the_stop(page, hub, "beside-default")
    evidence.screenshot(page, "stopped-tab-01-dialog")
    dialog = stopped_dialog(page)
    expect(dialog.get_by_role("button", name="Home")).to_be_visible()

    # Restart goes through the hub's start page, which starts a project with its files
    # at once, back to the project's JupyterLab.
    dialog.get_by_role("button", name="Restart").click()
    wait_for_lab(page)
    assert page.url.startswith(hub.server_url(STUDENT, PROJECT))
    assert hub.wait_ready(STUDENT, PROJECT)


def test_stopped_alone_says_so_once_and_home_lists_the_projects(project_tab, hub):
    """With no other server, the hub itself answers the tab: 424 "not running"."""
    page = project_tab
    hub.stop_server(STUDENT)
    watch_the_stop(page, hub, "alone")
    stopped_dialog(page).get_by_role("button", name="Home").click()
    page.wait_for_url(f"{hub.url}/hub/home", timeout=UI_TIMEOUT_MS)
