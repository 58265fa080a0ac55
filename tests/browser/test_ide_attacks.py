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

import pytest

from ..support.certificates import make_certificate
from ..support.hubtools import login
from .conftest import HUB, TEACHER, TEACHER_PASSWORD
from .ide_attack import (
    ATTACKER,
    attack_from_the_class_page,
    leaked,
    new_tokens,
    open_server,
    plant,
    sign_in,
    signed_in_as,
    toss_cookies_and_try,
    unchanged,
)
from .network import NETWORK_HOST, PREVIEW_DOMAIN, start_network_hub

pytestmark = pytest.mark.browser

OTHER_STUDENT = "bruno"


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
    plant(hub, OTHER_STUDENT)
    return hub


def test_a_students_ide_cannot_act_as_the_teacher_or_admin_who_opens_it(
    network_class, viewers, new_context, evidence
):
    attack_from_the_class_page(network_class, viewers, new_context, evidence, OTHER_STUDENT)


def test_cookies_a_students_page_sets_for_the_hub_domain_over_plain_http(
    network_class, new_context
):
    hub = network_class
    page = sign_in(new_context("teacher, cookies tossed"), hub, TEACHER, TEACHER_PASSWORD)
    open_server(page, f"{hub.server_url(TEACHER)}lab")
    open_server(page, f"{hub.server_url(OTHER_STUDENT)}lab")
    sent = []
    page.on("request", lambda request: sent.append(request.all_headers()))
    found, before, after = toss_cookies_and_try(page, hub, TEACHER, OTHER_STUDENT)
    # The case at hand: no Sec-Fetch-* for the hub to decide by over plain HTTP.
    assert sent and not any(name.startswith("sec-fetch-") for h in sent for name in h)
    # Nothing acts as the teacher: her XSRF token and login cookie stay hers alone.
    assert leaked(found, ATTACKER) == [], found
    assert new_tokens(before, after) == [] and unchanged(before, after), (before, after)
    # What plain HTTP cannot stop (README, Security): the hub now reads Amira's login
    # cookie from this browser, so the teacher's next hub pages are Amira's, and logging
    # out does not end it (the cookie is not the hub's to clear).
    assert signed_in_as(page, hub) == ATTACKER
    page.goto(f"{hub.url}/hub/home")  # "My Server" is then Amira's IDE
    with page.expect_navigation(url=f"{hub.server_url(ATTACKER)}**", wait_until="commit"):
        page.locator("#start").click()
    page.goto(f"{hub.url}/hub/logout")
    assert signed_in_as(page, hub) == ATTACKER


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory, request):
    """The class hub at https://hub.example.test:<port> (CODEPILOT_SSL_CERT/_KEY)."""
    certificate = make_certificate(
        tmp_path_factory.mktemp("tls"), [NETWORK_HOST, f"*.{NETWORK_HOST}", f"*.{PREVIEW_DOMAIN}"]
    )
    hub = start_network_hub(
        "https",
        {
            "CODEPILOT_SSL_CERT": str(certificate.cert),
            "CODEPILOT_SSL_KEY": str(certificate.key),
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
        },
        trusted_cert=certificate.cert,
    )
    request.config.stash[HUB] = hub
    for user in (ATTACKER, TEACHER):
        hub.create_user(user)
        hub.api("POST", hub.server_path(user)).raise_for_status()
    for user in (ATTACKER, TEACHER):
        hub.wait_ready(user)
    yield hub
    hub.stop()
    del request.config.stash[HUB]


def test_over_https_a_students_page_cannot_set_the_hubs_login_cookie(tls_hub, chromium, evidence):
    hub = tls_hub
    context = evidence.watch(chromium.new_context(ignore_https_errors=True), "teacher, https")
    page = sign_in(context, hub, TEACHER, TEACHER_PASSWORD)
    found, before, after = toss_cookies_and_try(page, hub, TEACHER, ATTACKER)
    assert leaked(found, ATTACKER) == [], found
    assert new_tokens(before, after) == [] and unchanged(before, after), (before, after)
    # The hub reads a __Host- cookie, which only the hub's own host can set.
    assert signed_in_as(page, hub) == TEACHER
    context.close()
