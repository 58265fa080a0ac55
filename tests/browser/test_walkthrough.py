"""A class's first lesson, from the login form to a running app, a stopped project and
back, every step a click or a keystroke in Chromium.

Student A logs in, picks the Flask starter, runs its README's command in a terminal and
opens the app from the Preview panel; student B logs in to a workspace of her own; the
teacher lands on the class page, sees both, opens A's preview and A's IDE, stops B's
project, sees it stopped, starts it again; B's tab says it stopped and Restart brings
her back. Each step's own depth is tested elsewhere (test_first_minutes.py,
test_class_page.py, test_stopped_tab.py); here the chain is: each step starts from
what the one before left on screen. The tests run in order and share one hub.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..support.hubtools import REPO_ROOT, start_hub
from .conftest import HUB
from .lab import (
    UI_TIMEOUT_MS,
    Terminal,
    dismiss_news_prompt,
    file_browser_item,
    lab_page_config,
    log_in,
    make_terminal_readable,
    start_from_spawn_form,
    wait_for_lab,
)
from .test_class_page import TEACHER_PASSWORD, sign_in

pytestmark = pytest.mark.browser

TEACHER = "tess"
STUDENT_A, STUDENT_B = "amira", "bruno"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
STARTER = "flask"  # runs without installing anything first
STARTERS_DIR = REPO_ROOT / "server_extension" / "starters"
STOP_TIMEOUT_MS = 60_000


def readme_command(starter: str) -> str:
    """The command a starter's README tells the student to run (its first code line)."""
    for line in (STARTERS_DIR / starter / "README.md").read_text().splitlines():
        if line.startswith("    "):
            return line.strip()
    raise AssertionError(f"{starter}'s README names no command")


@dataclass
class Person:
    name: str
    page: Page


@pytest.fixture(scope="module")
def hub(request):
    hub = start_hub(
        env={"CODEPILOT_TEACHERS": TEACHER, "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD}
    )
    request.config.stash[HUB] = hub
    yield hub
    hub.stop()
    del request.config.stash[HUB]


def student_logs_in(hub, new_context, name: str, starter: str) -> Person:
    """Login form, the spawn form's starter and Start, JupyterLab."""
    page = new_context(name).new_page()
    log_in(page, hub.url, name, PASSWORD)
    start_from_spawn_form(page, starter)
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return Person(name, page)


@pytest.fixture(scope="module")
def student_a(hub, new_context) -> Person:
    return student_logs_in(hub, new_context, STUDENT_A, STARTER)


@pytest.fixture(scope="module")
def student_b(hub, new_context) -> Person:
    return student_logs_in(hub, new_context, STUDENT_B, "")


@pytest.fixture(scope="module")
def teacher(hub, new_context) -> Person:
    return Person(TEACHER, sign_in(new_context(TEACHER), hub, TEACHER, TEACHER_PASSWORD))


def class_row(teacher: Person, student: str):
    return teacher.page.locator(f'#rows tr[data-id="{student}/"]')


def heading(page: Page):
    return page.get_by_role("heading", level=1)


def test_a_student_runs_her_starter_and_sees_it_in_the_preview(hub, student_a, evidence):
    page = student_a.page
    assert page.url.startswith(f"{hub.server_url(STUDENT_A)}lab"), page.url
    expect(file_browser_item(page, "app.py")).to_be_visible()  # the starter's files
    # The one shortcut (lab.py): the terminal's text in the page, for the test to read.
    make_terminal_readable(page, hub.server_url(STUDENT_A))
    page.reload()
    wait_for_lab(page)
    app = Terminal.open_from_launcher(page)
    app.run(readme_command(STARTER))
    app.wait_for_text("Debugger is active")

    page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="codepilot-preview"]').click()
    panel = page.locator("#codepilot-preview")
    with page.context.expect_page() as opened:
        panel.get_by_role("link", name="Open").click()
    preview = opened.value
    expect(heading(preview)).to_have_text("Hello from Flask")
    evidence.screenshot(preview, "walkthrough-01-preview")


def test_a_second_student_gets_a_workspace_of_her_own(hub, student_b):
    page = student_b.page
    assert page.url.startswith(f"{hub.server_url(STUDENT_B)}lab"), page.url
    workspace = Path(lab_page_config(page)["serverRoot"])
    assert workspace.parts[-2:] == (STUDENT_B, "default"), workspace
    expect(page.locator(".jp-DirListing-content")).to_be_visible()
    expect(file_browser_item(page, "app.py")).to_have_count(0)  # not A's files


def test_the_teacher_sees_both_students_and_opens_their_work(hub, teacher, student_a, student_b):
    page = teacher.page
    assert page.url.startswith(hub.service_url("codepilot")), page.url  # lands on it
    rows = page.locator("#rows tr[data-id]")
    expect(rows).to_have_count(2)
    for student in (STUDENT_A, STUDENT_B):
        expect(class_row(teacher, student).locator("span.state")).to_have_text("running")

    with page.context.expect_page() as opened:
        class_row(teacher, STUDENT_A).get_by_role("link", name=re.compile("preview")).click()
    expect(heading(opened.value)).to_have_text("Hello from Flask")

    with page.context.expect_page() as opened:
        class_row(teacher, STUDENT_A).get_by_role("link", name=re.compile("IDE")).click()
    ide = opened.value
    # The hub asks once, in words that say whose workspace this is.
    expect(ide.get_by_role("heading", name=f"Open {STUDENT_A}'s workspace?")).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    ide.get_by_role("button", name="Open the workspace").click()
    wait_for_lab(ide)
    assert ide.url.startswith(hub.server_url(STUDENT_A)), ide.url
    expect(file_browser_item(ide, "app.py")).to_be_visible()  # A's workspace


def test_the_teacher_stops_a_project_and_the_student_restarts_it(hub, teacher, student_b, evidence):
    page, row = teacher.page, class_row(teacher, STUDENT_B)
    page.bring_to_front()
    row.get_by_role("button", name=re.compile("^Stop")).click()
    expect(row.locator("span.state")).to_have_text("stopped", timeout=STOP_TIMEOUT_MS)
    expect(row.get_by_role("button", name=re.compile("^Start"))).to_be_visible()

    # B's tab noticed on its own and says so, with a way back.
    dialog = student_b.page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(re.compile("stopped", re.I), timeout=UI_TIMEOUT_MS)
    evidence.screenshot(student_b.page, "walkthrough-02-stopped-tab")

    row.get_by_role("button", name=re.compile("^Start")).click()
    expect(row.locator("span.state")).to_have_text("running", timeout=STOP_TIMEOUT_MS)

    student_b.page.bring_to_front()
    dialog.get_by_role("button", name="Restart").click()
    wait_for_lab(student_b.page)
    assert student_b.page.url.startswith(hub.server_url(STUDENT_B)), student_b.page.url
    expect(dialog).to_have_count(0)
