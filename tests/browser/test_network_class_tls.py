"""A class on a school network over HTTPS, in real Chromium.

The hub is ``https://hub.example.test:<port>`` with a self-signed wildcard certificate
(``CODEPILOT_SSL_CERT``/``_KEY``) made here like the README's trial one, covering
``hub.example.test``, ``*.hub.example.test`` (users' hosts) and ``*.cp-previews.test``
(previews). Chromium maps the names to this machine (``--host-resolver-rules``) and
trusts that one key (``--ignore-certificate-errors-spki-list``), as a browser that was
told to trust the certificate. A student starts the React + Vite starter, runs it as its
README says, and sees her edit arrive by hot reload (Vite's websocket, wss through the
preview gateway); another student is refused; a public preview opens without login.
On these secure origins Chromium sends ``Sec-Fetch-*``, which the gateway reads (the
plain-HTTP class in test_network_class.py is the case without them).
"""

import json
import re

import pytest
from playwright.sync_api import expect, sync_playwright

from ..support.certificates import make_certificate
from .chromium import VIEWPORT
from .lab import UI_TIMEOUT_MS, fetch_in_page, log_in
from .network import PREVIEW_DOMAIN, launch_network_chromium, start_network_hub
from .vite_run import edit_arrives_by_hot_reload, start_react_vite

pytestmark = pytest.mark.browser

HUB_HOST = "hub.example.test"
STUDENT = "ada"
TEACHER_PASSWORD = "teacher-password"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    return make_certificate(folder, [HUB_HOST, f"*.{HUB_HOST}", f"*.{PREVIEW_DOMAIN}"])


@pytest.fixture(scope="module")
def https_hub(certificate):
    hub = start_network_hub(
        "https",
        {
            "CODEPILOT_SSL_CERT": str(certificate.cert),
            "CODEPILOT_SSL_KEY": str(certificate.key),
            "CODEPILOT_TEACHERS": "tess",
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
        },
        trusted_cert=certificate.cert,
    )
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def browser(certificate):
    with sync_playwright() as playwright:
        chromium = launch_network_chromium(
            playwright, f"--ignore-certificate-errors-spki-list={certificate.spki_sha256}"
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def vite_app(browser, https_hub):
    """Ada logs in, starts the React + Vite starter and runs it as its README says."""
    app = start_react_vite(browser, https_hub, STUDENT)
    yield app
    app["context"].close()


def test_a_student_runs_react_vite_over_https_and_edits_reload_in_place(vite_app, https_hub):
    origin = vite_app["origin"]
    assert re.fullmatch(rf"https://ada-[a-z0-9-]+\.{re.escape(PREVIEW_DOMAIN)}:\d+", origin)
    assert https_hub.url.startswith(f"https://{HUB_HOST}:")
    edit_arrives_by_hot_reload(vite_app, "Hot reloaded over wss")

    # A secure origin: Chromium sends Sec-Fetch-*, and the gateway let the app's own
    # requests through by them.
    to_preview = [headers for url, headers in vite_app["sent"] if url.startswith(origin)]
    assert to_preview and all("sec-fetch-site" in headers for headers in to_preview)
    assert any(headers["sec-fetch-site"] == "same-origin" for headers in to_preview)
    # Every cookie the hub, its services, the IDE and the gateway set is Secure.
    cookies = vite_app["context"].cookies()
    names = {(c["name"], c["domain"]) for c in cookies}
    ide = f"{STUDENT}.{HUB_HOST}"
    # Over HTTPS with users' hosts, JupyterHub's own cookies are __Host- cookies, which no
    # sibling host can set (README, Security).
    assert {("_xsrf", ide), (f"__Host-jupyterhub-user-{STUDENT}", ide)} <= names, names
    assert ("__Host-jupyterhub-hub-login", HUB_HOST) in names, names
    assert {"jupyterhub-session-id", "codepilot_preview_session"} <= {name for name, _ in names}
    plain = [f"{c['name']} ({c['domain']})" for c in cookies if not c["secure"]]
    assert not plain, plain


def test_another_student_is_refused_and_a_public_preview_needs_no_login(
    browser, https_hub, vite_app
):
    context = browser.new_context(viewport=VIEWPORT)
    grace = context.new_page()
    log_in(grace, https_hub.url, "grace", "class-password", next_path="/hub/home")
    grace.wait_for_url(f"{https_hub.url}/hub/**", timeout=UI_TIMEOUT_MS)
    answer = grace.goto(vite_app["url"])
    assert answer.status == 403
    expect(grace.get_by_role("heading", level=1)).to_have_text("No access to this preview")
    context.close()

    # Ada shares it publicly, as the lab's Share menu does.
    shared = fetch_in_page(
        vite_app["lab"],
        "PUT",
        f"{vite_app['server_url']}codepilot/api/preview",
        {"Content-Type": "application/json"},
        json.dumps({"share": "public"}),
    )
    assert shared["status"] == 200, shared
    stranger = browser.new_context(viewport=VIEWPORT)
    page = stranger.new_page()
    answer = page.goto(vite_app["url"])
    assert answer.status == 200 and page.url == vite_app["url"]
    expect(page.get_by_role("heading", level=1)).to_have_text("Hot reloaded over wss")
    stranger.close()


def test_the_teacher_sees_the_class_over_https(browser, https_hub, vite_app):
    """The class page reads each server's sync state through the https proxy, and links
    previews over https."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log_in(page, https_hub.url, "tess", TEACHER_PASSWORD)
    page.wait_for_url(lambda url: "/hub/login" not in url, timeout=UI_TIMEOUT_MS)
    page.goto(https_hub.service_url("codepilot"))
    ada = page.locator(f'tr[data-id="{STUDENT}/"]')
    expect(ada.locator("td.sync")).to_have_text("local disk", timeout=UI_TIMEOUT_MS)
    expect(ada.locator(".share")).to_have_text("Anyone with the link")
    preview = ada.locator("a", has_text="Open preview")
    expect(preview).to_have_attribute("href", vite_app["url"])
    context.close()
