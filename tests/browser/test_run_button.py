"""The Run button in real Chromium, against the one-machine hub: a student presses Run on
the Flask starter, the Run tab shows the app's output and the preview answers; a second
browser sees the same output live; a reload reattaches; Stop ends every process of the
run (checked from /proc); a crash shows `Crashed (exit N)` with the run's last words.
"""

import json

import pytest
from playwright.sync_api import Page, expect

from server_extension.run.processes import descendants

from ..support.procfs import alive
from .lab import (
    SPAWN_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    Terminal,
    dismiss_news_prompt,
    fetch_in_page,
    log_in,
    make_terminal_readable,
    start_from_spawn_form,
    wait_for_lab,
)
from .test_first_minutes import preview_url

pytestmark = pytest.mark.browser

STUDENT = "rosa"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
FLASK_BANNER = "Running on http://127.0.0.1:"


def open_lab(page: Page, hub_url: str, server_url: str, starter: str | None = None) -> None:
    """Log in; start the server from the spawn form with ``starter`` (None: it runs)."""
    log_in(page, hub_url, STUDENT, PASSWORD)
    if starter is not None:
        start_from_spawn_form(page, starter)
        wait_for_lab(page)
        # The run's terminal takes the terminal settings JupyterLab had when it opened.
        make_terminal_readable(page, server_url)
    page.goto(f"{server_url}lab")
    wait_for_lab(page)
    dismiss_news_prompt(page)


@pytest.fixture(scope="module")
def lab(plain_hub, new_context) -> Page:
    """Rosa's JupyterLab on the Flask starter, the terminal readable from the page."""
    page = new_context(STUDENT).new_page()
    open_lab(page, plain_hub.url, plain_hub.server_url(STUDENT), starter="flask")
    return page


def run_panel(page: Page) -> Terminal:
    return Terminal(page, page.locator(".jp-codepilot-RunPanel"))


def status_item(page: Page):
    return page.locator("#jp-main-statusbar .jp-codepilot-RunStatus")


def top_button(page: Page, name: str):
    return page.locator(f"#jp-top-panel .jp-codepilot-{name}")


def run_model(page: Page, server_url: str) -> dict:
    reply = fetch_in_page(page, "GET", f"{server_url}codepilot/api/run")
    assert reply["status"] == 200, reply
    return json.loads(reply["text"])


def test_run_shows_the_apps_output_below_the_editors_and_the_preview_answers(lab, plain_hub):
    top_button(lab, "run").click()
    panel = lab.locator(".jp-codepilot-RunPanel")
    expect(panel).to_be_visible(timeout=UI_TIMEOUT_MS)
    # A tab of the main area, docked below the launcher.
    dock = lab.locator("#jp-main-dock-panel").bounding_box()
    box = panel.bounding_box()
    assert dock and box and box["y"] > dock["y"] + dock["height"] / 4, (dock, box)
    run_panel(lab).wait_for_text(FLASK_BANNER)
    expect(status_item(lab)).to_have_text("▶ Running", timeout=UI_TIMEOUT_MS)
    expect(top_button(lab, "stop")).to_be_visible()
    preview = lab.context.new_page()
    preview.goto(preview_url(plain_hub, STUDENT))
    expect(preview.get_by_role("heading", level=1)).to_have_text("Hello from Flask")
    preview.close()
    # Flask logs the request: the output is live.
    run_panel(lab).wait_for_text('"GET / HTTP/1.1" 200')


def test_a_second_browser_sees_the_same_output_live(lab, plain_hub, new_context):
    server_url = plain_hub.server_url(STUDENT)
    other = new_context(f"{STUDENT}-laptop").new_page()
    open_lab(other, plain_hub.url, server_url)
    # The run lives: this JupyterLab opens its output by itself.
    run_panel(other).wait_for_text(FLASK_BANNER)
    preview = other.context.new_page()
    preview.goto(f"{preview_url(plain_hub, STUDENT)}seen-by-both")
    preview.close()
    for page in (lab, other):
        run_panel(page).wait_for_text('"GET /seen-by-both HTTP/1.1" 404')
    other.close()


def test_a_reload_reattaches_to_the_run(lab, plain_hub):
    before = run_model(lab, plain_hub.server_url(STUDENT))["run"]["number"]
    lab.reload()
    wait_for_lab(lab)
    run_panel(lab).wait_for_text(FLASK_BANNER)
    expect(status_item(lab)).to_have_text("▶ Running", timeout=UI_TIMEOUT_MS)
    assert run_model(lab, plain_hub.server_url(STUDENT))["run"]["number"] == before


def test_stop_ends_every_process_of_the_run(lab, plain_hub):
    pid = run_model(lab, plain_hub.server_url(STUDENT))["pid"]
    members = descendants(pid)
    assert len(members) >= 2, members  # the shell's python and Flask's reloaded child
    top_button(lab, "stop").click()
    expect(status_item(lab)).to_have_text("▶ Stopped", timeout=UI_TIMEOUT_MS)
    expect(top_button(lab, "run")).to_be_visible()
    assert [member for member in members if alive(member)] == []


def test_a_crash_shows_its_exit_code_and_last_output(lab, plain_hub):
    server_url = plain_hub.server_url(STUDENT)
    config = '[run]\ncommand = "echo the last words; exit 3"\n'
    body = json.dumps({"type": "file", "format": "text", "content": config})
    reply = fetch_in_page(lab, "PUT", f"{server_url}api/contents/codepilot.toml", {}, body)
    assert reply["status"] < 300, reply
    top_button(lab, "run").click()
    expect(status_item(lab)).to_have_text("▶ Crashed (exit 3)", timeout=UI_TIMEOUT_MS)
    headline = lab.locator(".jp-codepilot-RunPanel .jp-codepilot-RunHeadline")
    expect(headline).to_contain_text("Crashed (exit 3)")
    # The run's terminal, or when it ended before the tab attached, its last output.
    shown = lab.locator(".jp-codepilot-RunPanel").get_by_text("the last words")
    expect(shown.locator("visible=true").first).to_be_visible()
    # After a reload the run is over: its last output comes from the server.
    lab.reload()
    wait_for_lab(lab)
    lab.locator("#jp-main-statusbar .jp-codepilot-RunStatus").click()
    tail = lab.locator(".jp-codepilot-RunPanel .jp-codepilot-RunTail")
    expect(tail).to_contain_text("the last words", timeout=SPAWN_TIMEOUT_MS)
