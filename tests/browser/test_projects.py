"""Projects in JupyterLab: the tab and the status bar name the project and its owner, a
teacher in a student's IDE is told whose workspace it is, and the switcher creates,
opens, stops and deletes projects (a reserved name refused as it is typed)."""

import json
import re

import pytest
from playwright.sync_api import Page, expect

from ..support.hubtools import login, start_hub
from .accessibility import serious_violations
from .conftest import HUB
from .lab import (
    SPAWN_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    dismiss_news_prompt,
    fetch_in_page,
    launcher_card,
    log_in,
    wait_for_lab,
)

pytestmark = pytest.mark.browser

STUDENT = "maya"
TEACHER = "tess"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
TEACHER_PASSWORD = "teacher-password"


@pytest.fixture(scope="module")
def hub(request):
    hub = start_hub(
        env={"CODEPILOT_TEACHERS": TEACHER, "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD}
    )
    request.config.stash[HUB] = hub
    login(hub, STUDENT)  # logging in puts her in the class
    hub.start_server(STUDENT, "web")
    yield hub
    hub.stop()
    del request.config.stash[HUB]


@pytest.fixture(scope="module")
def lab(hub, new_context) -> Page:
    """Maya's project "web" in JupyterLab."""
    page = new_context(STUDENT).new_page()
    log_in(page, hub.url, STUDENT, PASSWORD, next_path=f"/user/{STUDENT}/web/lab")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return page


def status_item(page: Page):
    return page.locator("#jp-main-statusbar .jp-codepilot-ProjectStatus")


def open_switcher(page: Page):
    status_item(page).click()
    panel = page.locator("#codepilot-projects")
    expect(panel).to_be_visible()
    return panel


def project_row(panel, name: str):
    return panel.locator(f".jp-codepilot-Projects-row[data-project='{name}']")


def server_names(hub, user: str) -> set[str]:
    model = hub.api("GET", f"/users/{user}?include_stopped_servers=1").json()
    return set(model["servers"])


def test_the_tab_and_the_status_bar_name_the_project_and_its_owner(lab, evidence):
    expect(lab).to_have_title(re.compile(r"(^|— )web — maya — Code Pilot$"))
    expect(status_item(lab)).to_have_text("Project: web")
    expect(lab.locator("#codepilot-visitor")).to_have_count(0)  # she is at home
    # The active document stays in front, as JupyterLab puts it there.
    launcher_card(lab, "Text File").click()
    expect(lab).to_have_title(re.compile(r"^untitled\S*\.txt — web — maya — Code Pilot$"))
    evidence.screenshot(lab, "projects-01-title-and-status")


def test_a_teacher_in_a_students_ide_is_told_whose_workspace_it_is(hub, new_context, evidence):
    page = new_context(TEACHER).new_page()
    log_in(page, hub.url, TEACHER, TEACHER_PASSWORD)
    page.wait_for_url(lambda url: "/hub/login" not in url)
    page.goto(f"{hub.server_url(STUDENT, 'web')}lab")
    authorize = page.get_by_role("button", name="Open the workspace")  # the hub asks her first
    authorize.or_(page.locator("#jp-main-dock-panel")).first.wait_for(timeout=SPAWN_TIMEOUT_MS)
    if authorize.count():
        authorize.click()
    wait_for_lab(page)
    line = page.get_by_role("region", name="Whose workspace")
    expect(line).to_contain_text("You are in maya's workspace", timeout=UI_TIMEOUT_MS)
    expect(line).to_contain_text("signed in as tess")
    expect(line).to_be_visible()
    expect(page).to_have_title(re.compile(r"web — maya — Code Pilot$"))
    expect(status_item(page)).to_have_text("maya's project: web")
    assert serious_violations(page, "#codepilot-visitor") == []

    # She may look and open; creating, stopping and deleting are maya's: no form, no
    # buttons, and the server refuses them, although its token is maya's.
    panel = open_switcher(page)
    expect(project_row(panel, "web")).to_contain_text("this tab")
    expect(panel.locator("form")).to_be_hidden()
    expect(panel.get_by_role("button", name=re.compile("^(Stop|Delete|Start) "))).to_have_count(0)
    evidence.screenshot(page, "projects-02-teacher-visitor")
    server = hub.server_url(STUDENT, "web")
    attempts = (("", {"name": "spy"}), ("/stop", {"name": ""}), ("/delete", {"name": "web"}))
    for path, body in attempts:
        reply = fetch_in_page(
            page, "POST", f"{server}codepilot/api/projects{path}",
            {"Content-Type": "application/json"}, json.dumps(body),
        )  # fmt: skip
        assert reply["status"] == 403, reply
        assert "Only maya can" in reply["text"]
    assert server_names(hub, STUDENT) == {"", "web"}


def test_a_reserved_name_is_refused_as_typed_and_takes_no_slot(lab, hub):
    panel = open_switcher(lab)
    name_field = panel.get_by_label("New project name")
    hint = panel.locator("#codepilot-new-project-hint")
    name_field.fill("preview")
    expect(hint).to_contain_text("cannot be named 'preview'")
    expect(name_field).to_have_attribute("aria-invalid", "true")
    panel.get_by_role("button", name="Create").click()
    expect(name_field).to_be_focused()
    name_field.fill("Notes")
    expect(hint).to_contain_text("lowercase letters")
    # On the hub's home page too, as typed; the hub itself refuses it on Add.
    home = lab.context.new_page()
    home.goto(f"{hub.url}/hub/home")
    home.locator(".new-server-name").fill("preview")
    expect(home.locator("#codepilot-server-name-note")).to_contain_text('named "preview"')
    expect(home.locator(".new-server-btn")).to_be_disabled()
    home.locator(".new-server-name").fill("preview2")
    expect(home.locator(".new-server-btn")).to_be_enabled()
    home.close()
    # Straight to the hub's API with her own token: refused before the hub records it.
    token = hub.user_token(STUDENT)
    reply = hub.api("POST", f"/users/{STUDENT}/servers/preview", token=token, json={})
    assert reply.status_code == 400 and "'preview'" in reply.json()["message"], reply.text
    assert server_names(hub, STUDENT) == {"", "web"}


def test_the_switcher_creates_opens_stops_and_deletes_a_project(lab, hub, evidence):
    panel = open_switcher(lab)
    name_field = panel.get_by_label("New project name")
    name_field.fill("notes")
    expect(panel.locator("#codepilot-new-project-hint")).to_have_text("notes is free.")
    panel.get_by_role("button", name="Create").click()
    row = project_row(panel, "notes")
    expect(row).to_have_attribute("data-state", "running", timeout=SPAWN_TIMEOUT_MS)
    assert "notes" in server_names(hub, STUDENT)

    with lab.context.expect_page() as opened:
        row.get_by_role("link", name="Open notes in a new tab").click()
    notes = opened.value
    wait_for_lab(notes)
    assert notes.url.startswith(hub.server_url(STUDENT, "notes")), notes.url
    expect(notes).to_have_title(re.compile(r"notes — maya — Code Pilot$"))
    assert notes.evaluate("window.opener") is None
    notes.close()

    row.get_by_role("button", name="Stop notes").click()
    expect(row).to_have_attribute("data-state", "stopped", timeout=SPAWN_TIMEOUT_MS)
    assert not hub.api("GET", f"/users/{STUDENT}").json()["servers"].get("notes")
    workspace = hub.data_dir / "workspaces" / STUDENT / "notes"
    assert workspace.is_dir()

    row.get_by_role("button", name="Delete notes").click()
    dialog = lab.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Its files on the server are deleted")
    expect(dialog).to_contain_text("cannot be undone")  # this hub keeps no S3 copy
    evidence.screenshot(lab, "projects-03-delete-dialog")
    dialog.get_by_role("button", name="Delete notes").click()
    expect(row).to_have_count(0, timeout=UI_TIMEOUT_MS)
    assert server_names(hub, STUDENT) == {"", "web"}
    assert not workspace.exists()


def test_the_palette_opens_the_switcher_which_reads_well(lab, evidence):
    lab.locator(".jp-SideBar .lm-TabBar-tab[data-id='filebrowser']").click()
    panel = lab.locator("#codepilot-projects")
    expect(panel).to_be_hidden()
    lab.keyboard.press("Control+Shift+c")
    lab.keyboard.type("Projects: Switch")
    lab.keyboard.press("Enter")
    expect(panel).to_be_visible()
    panel.get_by_label("New project name").fill("lab")  # an error on screen, too
    expect(panel.locator("#codepilot-new-project-hint")).to_contain_text("cannot be named")
    evidence.screenshot(lab, "projects-04-switcher")
    assert serious_violations(lab, "#codepilot-projects") == []
    assert serious_violations(lab, ".jp-codepilot-ProjectStatus") == []
