"""A student's IDE tries to act as the teacher or admin who opens it, on a school
network over plain HTTP, in real Chromium (the one-machine ``*.localhost`` run is in
test_class_page.py).

The hub is ``http://hub.example.test:<port>``, each user's IDE at
``<user>.hub.example.test``: same-site with the hub, Chromium sends no ``Sec-Fetch-*``
there, and a user's page may set cookies for ``hub.example.test`` and ``example.test``.
Amira's extension and trusted notebook (see ide_attack.py) run in the viewer's page;
every attempt must fail and leave nothing behind. Then her page tosses her own hub
cookies onto the hub's domain and tries again with her own XSRF token.
"""

import json

import pytest

from .conftest import NETWORK_HOST, TEACHER, TEACHER_PASSWORD
from .ide_attack import (
    TOSSED_COOKIES,
    SPY,
    leaked,
    new_tokens,
    open_server,
    plant,
    reports,
    traces,
    unchanged,
)
from ..hubtools import login
from .lab import UI_TIMEOUT_MS, log_in

pytestmark = pytest.mark.browser

ATTACKER, OTHER_STUDENT = "amira", "bruno"


@pytest.fixture(scope="module")
def chromium(network_chromium):
    """This module's people use the browser that finds the network's names."""
    return network_chromium


@pytest.fixture(scope="module")
def viewers(network_admin_password) -> dict[str, str]:
    return {TEACHER: TEACHER_PASSWORD, "admin": network_admin_password}


@pytest.fixture(scope="module")
def network_class(network_hub, viewers):
    """Amira, Bruno, the teacher and the admin, each with a running server; Amira's
    extension and notebook in place."""
    hub = network_hub
    users = {ATTACKER: "class-password", OTHER_STUDENT: "class-password", **viewers}
    for user, password in users.items():
        login(hub, user, password)  # students join the class by logging in
        hub.api("POST", hub.server_path(user)).raise_for_status()
    for user in users:  # the four start at once
        hub.wait_ready(user)
    plant(hub, ATTACKER, OTHER_STUDENT, "help.ipynb")
    return hub


def sign_in(context, hub, user: str, password: str):
    page = context.new_page()
    log_in(page, hub.url, user, password, next_path="/hub/home")
    page.wait_for_url(f"{hub.url}/hub/home", timeout=UI_TIMEOUT_MS)
    return page


def test_a_students_ide_cannot_act_as_the_teacher_or_admin_who_opens_it(
    network_class, viewers, new_context, evidence
):
    hub = network_class
    pages, before = {}, {}
    for viewer, password in viewers.items():
        page = sign_in(new_context(viewer), hub, viewer, password)
        # She has used her own server and another student's: their cookies are here.
        open_server(page, f"{hub.server_url(viewer)}lab")
        open_server(page, f"{hub.server_url(OTHER_STUDENT)}lab")
        page.goto(hub.service_url("codepilot"))  # the class page links Amira's IDE
        ide = page.locator(f'tr[data-id="{ATTACKER}/"] a', has_text="Open IDE")
        before[viewer] = traces(hub, viewer, OTHER_STUDENT)
        open_server(page, f"{ide.get_attribute('href')}/tree/help.ipynb")
        pages[viewer] = page  # both IDEs load at once
    for viewer, page in pages.items():
        found = reports(page)
        evidence.screenshot(page, f"ide-attack-network-{viewer}")
        after = traces(hub, viewer, OTHER_STUDENT)
        for carrier in found:
            assert found[carrier]["viewer"] == viewer
            assert leaked(found[carrier]) == [], (viewer, carrier, found[carrier])
        # The one new token: the hub's to Amira's server at the viewer's sign-in there.
        assert new_tokens(before[viewer], after) == [("", f"Server at /user/{ATTACKER}/")]
        assert unchanged(before[viewer], after), (before[viewer], after)


def own_hub_cookies(hub, user: str) -> dict[str, str]:
    """The student's own hub cookies, as her browser holds them after she logs in."""
    jar = login(hub, user).cookies
    return {name: next(c.value for c in jar if c.name == name) for name, _ in TOSSED_COOKIES}


def signed_in_as(page, hub) -> str:
    """Whom the hub takes this browser for."""
    page.goto(f"{hub.url}/hub/api/user")
    return json.loads(page.locator("body").inner_text())["name"]


def test_cookies_a_students_page_sets_for_the_hub_domain(network_class, new_context):
    hub = network_class
    toss = {
        "cookies": own_hub_cookies(hub, ATTACKER),
        "paths": TOSSED_COOKIES,
        "domains": [NETWORK_HOST, NETWORK_HOST.split(".", 1)[1]],
    }
    config = json.dumps(
        {"hub": hub.url, "attacker": ATTACKER, "other": hub.server_url(OTHER_STUDENT), "toss": toss}
    )
    page = sign_in(new_context("teacher, cookies tossed"), hub, TEACHER, TEACHER_PASSWORD)
    open_server(page, f"{hub.server_url(TEACHER)}lab")
    open_server(page, f"{hub.server_url(OTHER_STUDENT)}lab")
    open_server(page, f"{hub.server_url(ATTACKER)}lab")
    # Any page of her origin is as good as her IDE for her script: a light one, her
    # server's "not found" (its API's answers forbid scripts any request).
    page.goto(f"{hub.server_url(ATTACKER)}nothing-here")
    before = traces(hub, TEACHER, OTHER_STUDENT)
    # Her script, as her extension or notebook would run it on her origin.
    found = page.evaluate(
        f"async () => {{ {SPY}\n await codepilotSpy({config}, 'spy-toss');"
        " return JSON.parse(document.getElementById('spy-toss').textContent); }"
    )
    print(json.dumps(found, indent=1))
    stored = [
        (c["name"], c["domain"], c["path"]) for c in page.context.cookies() if "example" in c["domain"]
    ]
    print(stored)
    after = traces(hub, TEACHER, OTHER_STUDENT)
    print(new_tokens(before, after), unchanged(before, after))
    print("hub sees", signed_in_as(page, hub))
    log_in(page, hub.url, TEACHER, TEACHER_PASSWORD, next_path="/hub/home")
    page.wait_for_url(f"{hub.url}/hub/**", timeout=UI_TIMEOUT_MS)
    print("after a new login the hub sees", signed_in_as(page, hub))
    assert leaked(found) == [], found
    assert new_tokens(before, after) == [] and unchanged(before, after)
