"""The class page in Chromium: a teacher sees her students, stops a server from the page
and sees it stop without a reload; a student gets 403 there; a student's IDE that the
teacher or the admin opens from it cannot act as them."""

import os

import pytest
from playwright.sync_api import expect

from ..support.hubtools import REPO_ROOT, login, start_hub
from ..support.students import Student
from .accessibility import serious_violations
from .conftest import HUB
from .ide_attack import (
    ATTACKER,
    attack_from_the_class_page,
    leaked,
    new_tokens,
    plant,
    signed_in_as,
    toss_cookies_and_try,
    unchanged,
)
from .lab import fill_login_form
from .screenshot import UPDATE_VARIABLE

TEACHER, TEACHER_PASSWORD = "tess", "teacher-password"
ADMIN_PASSWORD = "admin-password-of-the-class-page-tests"
STUDENTS = [ATTACKER, "bruno", "chen", "dana"]
OTHER_STUDENT = "chen"  # running all along (bruno's server is stopped from the page)
ADDED_BY_ADMIN = "erin"  # never logged in
CLASS_PAGE_SCREENSHOT = REPO_ROOT / "docs" / "class-page.png"


@pytest.fixture(scope="module")
def class_hub(request):
    hub = start_hub(
        env={
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
            "CODEPILOT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )
    request.config.stash[HUB] = hub
    for name in STUDENTS:
        login(hub, name)  # logging in puts a student in the class ...
    hub.create_user(ADDED_BY_ADMIN)  # ... and so does being added by the admin
    for name in STUDENTS[:3]:
        hub.start_server(name)
    hub.start_server("chen", "web")  # a named project
    yield hub
    hub.stop()
    del request.config.stash[HUB]


def sign_in(context, hub, user, password):
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    fill_login_form(page, user, password)
    page.wait_for_url(lambda url: "/hub/login" not in url)  # teachers land on the class page
    return page


def test_teacher_stops_a_server_from_the_class_page(class_hub, new_context, evidence):
    page = sign_in(new_context("teacher"), class_hub, "tess", TEACHER_PASSWORD)
    page.goto(class_hub.service_url("codepilot"))
    rows = page.locator("#rows tr[data-id]")
    rows.first.wait_for()
    # Locators, not page functions: the page's CSP forbids evaluating strings.
    expect(page.locator("#rows tr[data-state=running]")).to_have_count(4)
    expect(page.locator("#rows td.sync:not(:empty)")).to_have_count(4)
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.id)")) == sorted(
        [f"{name}/" for name in [*STUDENTS, ADDED_BY_ADMIN]] + ["chen/web"]
    )
    amira = page.locator('tr[data-id="amira/"]')
    ide = amira.locator("a", has_text="Open IDE").get_attribute("href")
    assert (
        ide == f"{class_hub.server_url('amira')}lab"
    )  # on her host: http://amira.localhost:<port>
    assert ".preview.localhost:" in amira.locator("a", has_text="Open preview").get_attribute(
        "href"
    )
    assert amira.locator(".share").text_content() == "Only me"
    shot = evidence.screenshot(page, "class-page")
    # The README's picture is refreshed on request only: a test run leaves docs/ alone.
    if os.environ.get(UPDATE_VARIABLE) == "1" or not CLASS_PAGE_SCREENSHOT.exists():
        CLASS_PAGE_SCREENSHOT.write_bytes(shot.read_bytes())

    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    bruno = page.locator('tr[data-id="bruno/"]')
    with page.expect_response(lambda response: "/api/servers/bruno/" in response.url) as stop:
        bruno.locator("button", has_text="Stop").click()
    assert stop.value.status == 200, stop.value.text()  # it was a 500, the stop done anyway
    bruno.locator("span.state", has_text="stopped").wait_for(timeout=60_000)
    expect(page.locator("#notice")).to_be_hidden()
    teacher_errors = [line for line in evidence.console if line.startswith("[teacher] error")]
    assert teacher_errors == []
    assert bruno.locator("button", has_text="Start").is_visible()
    assert navigations == []  # the page updated itself, no reload
    assert "" not in class_hub.api("GET", "/users/bruno").json()["servers"]


def test_a_stopped_project_stays_listed_and_starts_again_from_the_page(class_hub, new_context):
    page = sign_in(new_context("teacher"), class_hub, "tess", TEACHER_PASSWORD)
    page.goto(class_hub.service_url("codepilot"))
    web = page.locator('tr[data-id="chen/web"]')
    web.locator("span.state", has_text="running").wait_for()
    web.locator("button", has_text="Stop").click()
    web.locator("span.state", has_text="stopped").wait_for(timeout=60_000)
    # It was dropped from the page once stopped; now it stays, to be started again.
    page.wait_for_timeout(3_000)  # a few of the page's refreshes
    expect(web).to_have_count(1)
    web.locator("button", has_text="Start").click()
    web.locator("span.state", has_text="running").wait_for(timeout=90_000)
    assert class_hub.api("GET", "/users/chen").json()["servers"]["web"]["ready"]


@pytest.mark.usefixtures("localhost_names")
def test_teacher_runs_and_stops_a_students_app_from_the_class_page(class_hub, new_context):
    amira = Student(class_hub, ATTACKER)
    amira.use_run_command()
    page = sign_in(new_context("teacher"), class_hub, TEACHER, TEACHER_PASSWORD)
    page.goto(class_hub.service_url("codepilot"))
    app = page.locator(f'tr[data-id="{ATTACKER}/"] td.run')
    whose = f"the app of {ATTACKER}'s default project"
    expect(app.locator(".run-state")).to_have_text("Stopped")
    app.get_by_role("button", name=f"Run {whose}").click()
    # The status bar's words, as the server's run goes from Starting to Running.
    expect(app.locator(".run-state")).to_have_text("Running", timeout=60_000)
    expect(app.get_by_role("button", name=f"Restart {whose}")).to_be_visible()
    assert amira.run_state["state"] == "running"
    app.get_by_role("button", name=f"Stop {whose}").click()
    expect(app.locator(".run-state")).to_have_text("Stopped", timeout=30_000)
    expect(app.get_by_role("button", name=f"Run {whose}")).to_be_visible()
    expect(page.locator("#notice")).to_be_hidden()
    assert amira.run_state["state"] == "stopped"


def test_the_class_page_reads_well_and_fits_a_tablet(class_hub, chromium):
    # axe-core is injected: the page's own CSP would refuse it.
    context = chromium.new_context(viewport={"width": 768, "height": 1024}, bypass_csp=True)
    page = sign_in(context, class_hub, "tess", TEACHER_PASSWORD)
    page.goto(class_hub.service_url("codepilot"))
    page.locator('tr[data-id="amira/"] span.state', has_text="running").wait_for()
    # Who is signed in, the way back to the hub and out of it.
    expect(page.locator(".who")).to_have_text("tess")
    expect(page.get_by_role("link", name="Log out")).to_have_attribute(
        "href", f"{class_hub.url}/hub/logout"
    )
    expect(page.get_by_role("link", name="Hub home")).to_be_visible()
    # Buttons say whose project they act on.
    expect(page.get_by_role("button", name="Stop amira's default project")).to_be_visible()
    expect(page.get_by_role("link", name="Open amira's default project in the IDE")).to_be_visible()
    # The page does not overflow a tablet's width (the table scrolls on its own).
    assert page.locator("html").evaluate("html => html.scrollWidth") <= 768
    assert serious_violations(page) == []
    context.close()


def test_the_login_page_and_the_spawn_form_read_well(class_hub, chromium):
    context = chromium.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{class_hub.url}/hub/login")
    login_problems = serious_violations(page)
    page = sign_in(context, class_hub, "dana", "class-password")
    page.goto(f"{class_hub.url}/hub/spawn/dana/homework")
    page.locator("#codepilot-starter").wait_for()
    assert (login_problems, serious_violations(page)) == ([], [])
    context.close()


def test_the_hub_opened_at_its_address_moves_to_its_name(class_hub, new_context):
    # Its cookies would not reach the users' hosts from http://127.0.0.1:<port>.
    page = new_context("visitor").new_page()
    page.goto(class_hub.url.replace("//localhost:", "//127.0.0.1:") + "/hub/login?next=%2Fhub%2F")
    page.wait_for_url(f"{class_hub.url}/hub/login?next=%2Fhub%2F")


def test_a_student_gets_403_on_the_class_page(class_hub, new_context):
    page = sign_in(new_context("student"), class_hub, "dana", "class-password")
    response = page.goto(class_hub.service_url("codepilot"))
    # The hub refuses her at its OAuth step: students lack access:services!service=codepilot
    assert response.status == 403
    assert page.locator("#rows").count() == 0


def test_a_students_ide_cannot_act_as_the_teacher_or_admin_who_opens_it(
    class_hub, new_context, evidence
):
    # Amira's extension and trusted notebook run in whoever opens her IDE (ide_attack.py);
    # the same attack on a network name is in test_ide_attacks.py.
    for user in (TEACHER, "admin"):  # their own servers, for the attack to aim at
        class_hub.api("POST", class_hub.server_path(user))
    for user in (TEACHER, "admin"):
        class_hub.wait_ready(user)
    plant(class_hub, OTHER_STUDENT)
    viewers = {TEACHER: TEACHER_PASSWORD, "admin": ADMIN_PASSWORD}
    attack_from_the_class_page(class_hub, viewers, new_context, evidence, OTHER_STUDENT)


def test_a_students_page_cannot_set_cookies_for_the_hub_on_localhost(class_hub, new_context):
    # localhost is a name of its own to browsers: amira.localhost cannot set cookies for
    # it, so the hub goes on reading the teacher's own (on a network name: the other file).
    page = sign_in(new_context("teacher, cookies tossed"), class_hub, TEACHER, TEACHER_PASSWORD)
    found, before, after = toss_cookies_and_try(page, class_hub, TEACHER, OTHER_STUDENT)
    assert leaked(found, ATTACKER) == [], found
    assert new_tokens(before, after) == [] and unchanged(before, after), (before, after)
    assert signed_in_as(page, class_hub) == TEACHER
