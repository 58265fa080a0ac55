"""A student's preview tries to act as the admin who opens it, in real Chromium.

Mallory serves a page from her workspace. The admin signs in to the hub, opens her
preview to help and clicks its button. The page then tries what a page on the hub's
origin could do with the viewer's session: read the hub in a same-origin window (for its
XSRF token and the viewer's name), mint a hub API token for the viewer, open a terminal
on the viewer's own server, and read the viewer's cookies. With previews on origins of
their own, every step must fail, and the hub must show nothing new.
"""

import json

import pytest
import requests
from playwright.sync_api import expect

from ..support.hubtools import save_text, wait_until
from ..support.localhost import resolve_localhost_subdomains
from ..support.terminals import run_in_terminal
from .lab import UI_TIMEOUT_MS, log_in

pytestmark = pytest.mark.browser

ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Help me with my homework</title></head>
<body><h1>My homework</h1><button id="help">It does not work, can you look?</button>
<pre id="report"></pre>
<script>
const HUB = %(hub)s;
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
async function attempt(name, action, out) {
  try { out[name] = await action(); } catch (error) { out[name] = "blocked: " + error.name; }
}
document.getElementById("help").onclick = async () => {
  const out = {cookies: document.cookie};
  let xsrf = "", viewer = "admin";
  const hubWindow = window.open(HUB + "/hub/home", "hub");  // the hub, signed in
  await sleep(2500);
  await attempt("hub_window", async () => {
    xsrf = (hubWindow.document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
    viewer = hubWindow.jhdata.user || viewer;
    return "readable";
  }, out);
  for (const [where, base] of [["here", ""], ["hub", HUB]]) {
    await attempt("token_" + where, async () => {
      const reply = await fetch(base + "/hub/api/users/" + viewer + "/tokens", {
        method: "POST", credentials: "include",
        headers: {"X-XSRFToken": xsrf, "Content-Type": "application/json"},
        body: JSON.stringify({note: "stolen"}),
      });
      return reply.status + " " + (await reply.text()).slice(0, 60);
    }, out);
    await attempt("terminal_" + where, async () => {
      const reply = await fetch(base + "/user/" + viewer + "/api/terminals", {
        method: "POST", credentials: "include", headers: {"X-XSRFToken": xsrf},
      });
      return reply.status + " " + (await reply.text()).slice(0, 60);
    }, out);
  }
  document.getElementById("report").textContent = JSON.stringify(out);
};
</script></body></html>
"""


@pytest.fixture(scope="module")
def mallory(browser_hub):
    browser_hub.create_user("mallory")
    browser_hub.start_server("mallory")
    token = browser_hub.user_token("mallory")
    page = ATTACK_PAGE % {"hub": json.dumps(browser_hub.url)}
    headers = {"Authorization": f"token {token}"}
    save_text(browser_hub.server_url("mallory"), "index.html", page, headers).raise_for_status()
    with browser_hub.open_terminal("mallory", token) as terminal:
        run_in_terminal(
            terminal, "(python -m http.server $PORT --bind 127.0.0.1 &) ; echo ok-$((2+2))", "ok-4"
        )
        preview = requests.get(
            f"{browser_hub.server_url('mallory')}preview/",
            headers=headers,
            allow_redirects=False,
            timeout=30,
        ).headers["Location"]
        with resolve_localhost_subdomains():
            wait_until(
                lambda: requests.get(preview, headers=headers, timeout=30).ok, 30, 0.2, "her app"
            )
        yield preview


def admin_tokens(hub) -> dict[str, dict]:
    return {t["id"]: t for t in hub.api("GET", "/users/admin/tokens").json()["api_tokens"]}


def admin_terminals(hub) -> list:
    reply = requests.get(
        f"{hub.server_url('admin')}api/terminals",
        headers={"Authorization": f"token {hub.token}"},
        timeout=30,
    )
    reply.raise_for_status()
    return reply.json()


def test_a_students_page_cannot_act_as_the_admin_who_opens_it(
    browser_hub, admin_password, new_context, evidence, mallory
):
    browser_hub.create_user("admin")
    browser_hub.start_server("admin")
    tokens_before, terminals_before = admin_tokens(browser_hub), admin_terminals(browser_hub)

    context = new_context("admin")
    page = context.new_page()
    log_in(page, browser_hub.url, "admin", admin_password, next_path="/hub/home")
    page.wait_for_url(f"{browser_hub.url}/hub/home", timeout=UI_TIMEOUT_MS)
    page.goto(mallory)  # the admin opens the student's preview: sign-in, then her page
    expect(page.get_by_role("heading", level=1)).to_have_text("My homework")
    assert page.url.startswith(mallory)
    page.get_by_role("button", name="It does not work").click()
    report = page.locator("#report")
    expect(report).not_to_be_empty(timeout=UI_TIMEOUT_MS)
    evidence.screenshot(page, "preview-attack-report")
    found = json.loads(report.text_content())

    # The hub's page, open in the admin's browser, is another origin: its cookies and
    # data cannot be read from the preview.
    assert found["hub_window"].startswith("blocked: SecurityError"), found
    assert "jupyterhub" not in found["cookies"] and "codepilot_preview" not in found["cookies"]
    for attempt in ("token_here", "token_hub", "terminal_here", "terminal_hub"):
        assert not found[attempt].startswith(("200", "201")), (attempt, found)
    # The only new token is the one the hub issued to the gateway at the admin's sign-in.
    new_tokens = [t for i, t in admin_tokens(browser_hub).items() if i not in tokens_before]
    assert [t["oauth_client"] for t in new_tokens] == ["JupyterHub service codepilot-preview"]
    assert admin_terminals(browser_hub) == terminals_before


def test_the_preview_refuses_other_students_and_strangers(browser_hub, new_context, mallory):
    stranger = new_context("stranger").new_page()
    stranger.goto(mallory)
    stranger.wait_for_url(f"{browser_hub.url}/hub/login**", timeout=UI_TIMEOUT_MS)

    browser_hub.create_user("grace")
    grace = new_context("grace").new_page()
    log_in(grace, browser_hub.url, "grace", "class-password", next_path="/hub/home")
    grace.wait_for_url(f"{browser_hub.url}/hub/**", timeout=UI_TIMEOUT_MS)
    answer = grace.goto(mallory)
    assert answer.status == 403
    expect(grace.get_by_role("heading", level=1)).to_have_text("No access to this preview")
