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

import os
import subprocess
from pathlib import Path

import pytest

from ..hubtools import free_port, login, start_hub
from .conftest import HUB, NETWORK_HOST, TEACHER, TEACHER_PASSWORD
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

pytestmark = pytest.mark.browser

OTHER_STUDENT = "bruno"
TLS_HUB_CONFIG = Path(__file__).parent / "tls_hub_config.py"


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
def tls_files(tmp_path_factory):
    """A certificate for hub.example.test and its users' hosts, trusted by this process
    (requests and websockets) while the module runs."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "hub.pem", folder / "hub-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={NETWORK_HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            f"subjectAltName=DNS:{NETWORK_HOST},DNS:*.{NETWORK_HOST}",
        ],
        check=True,
        capture_output=True,
    )
    trusted = {"REQUESTS_CA_BUNDLE": str(cert), "SSL_CERT_FILE": str(cert)}
    saved = {name: os.environ.get(name) for name in trusted}
    os.environ.update(trusted)
    yield cert, key
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def tls_hub(tls_files, request):
    """The class hub at https://hub.example.test:<port> (TLS ends at the proxy)."""
    cert, key = tls_files
    port = free_port()
    hub = start_hub(
        env={
            "CODEPILOT_PORT": str(port),
            "CODEPILOT_PUBLIC_URL": f"https://{NETWORK_HOST}:{port}",
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
            "CODEPILOT_HUB_EXTRA_CONFIG": str(TLS_HUB_CONFIG),
            "CODEPILOT_TEST_TLS_CERT": str(cert),
            "CODEPILOT_TEST_TLS_KEY": str(key),
        }
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
