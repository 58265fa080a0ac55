"""Code intelligence: a keystroke to the completion list on screen, and what the language
servers cost.

One hub, one student, Chromium through the hub's proxy. The student's server holds the
flask starter's ``app.py`` and the react-vite starter's ``jsconfig.json`` and ``App.jsx``
(no ``node_modules``). In ``app.py`` a new line gets ``os.pa`` as one edit, as a paste or
a fast typist's burst; the time from that input event to JupyterLab's completer listing
``path`` (pylsp's answer) is read in the page, ``--rounds`` times; in ``App.jsx`` the same
for ``cou`` and the local ``count`` (typescript-language-server's). The PSS of the
server idle before any code file was opened, then of the language servers once started.
"""

import argparse
import json
import pwd
import sys
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.bench_pairing import idle_server_pss_mb, open_app_py, signed_in
from tests.browser.chromium import launch_chromium
from tests.support.hubtools import login, save_text, start_hub
from tests.support.langservers import language_server_processes, pss_kib
from tests.support.procfs import memory_kb
from tests.support.timing import latency_summary

STUDENT = "maya"
EDITOR = ".jp-FileEditor:visible .cm-content"
STARTERS = Path(__file__).resolve().parents[2] / "server_extension/starters"
LSP_TIMEOUT_MS = 60_000

# Times, in the page, the next input event and the first completer item holding `word`.
WATCH_COMPLETION = """(word) => {
  window.inputAt = null; window.listedAt = null;
  document.addEventListener("beforeinput",
    () => { if (window.inputAt === null) window.inputAt = performance.now(); },
    {capture: true, once: true});
  const observer = new MutationObserver(() => {
    const items = [...document.querySelectorAll(".jp-Completer-item")];
    if (items.some(item => item.offsetParent !== null && item.textContent.includes(word))) {
      window.listedAt = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def server_with_code(hub) -> None:
    login(hub, STUDENT)
    hub.start_server(STUDENT)
    server, admin = hub.server_url(STUDENT), {"Authorization": f"token {hub.token}"}
    react = STARTERS / "react-vite"
    for folder in ("web", "web/src"):
        requests.put(
            f"{server}api/contents/{folder}", headers=admin, json={"type": "directory"}, timeout=30
        ).raise_for_status()
    files = {
        "app.py": (STARTERS / "flask" / "app.py").read_text(),
        "web/jsconfig.json": (react / "jsconfig.json").read_text(),
        "web/src/App.jsx": (react / "src" / "App.jsx").read_text(),
    }
    for path, text in files.items():
        save_text(server, path, text, admin).raise_for_status()


def open_in_editor(page, server: str, path: str) -> None:
    page.goto(f"{server}lab/tree/{path}")
    page.locator(EDITOR).wait_for(timeout=LSP_TIMEOUT_MS)
    page.locator(".jp-StatusBar-Widget", has_text="Fully initialized").first.wait_for(
        timeout=LSP_TIMEOUT_MS
    )


def completion_latencies(page, go_to_line: list[str], text: str, word: str, rounds: int):
    """Milliseconds from inserting ``text`` on a new line to ``word`` listed, per round;
    the line is removed after each."""
    latencies = []
    for _ in range(rounds):
        page.locator(EDITOR).click()
        for key in go_to_line:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.evaluate(WATCH_COMPLETION, word)
        page.keyboard.insert_text(text)
        page.wait_for_function("() => window.listedAt !== null", timeout=LSP_TIMEOUT_MS)
        latencies.append(page.evaluate("() => window.listedAt - window.inputAt"))
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Home")
        page.keyboard.press("Backspace")
        page.keyboard.press("Backspace")
    return latencies


def language_servers_pss_mb(uid: int) -> dict:
    totals = {}
    for process in language_server_processes(uid):
        totals[process.name] = totals.get(process.name, 0) + pss_kib(process.pid)
    return {name: round(kib / 1024, 1) for name, kib in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    hub = start_hub()
    try:
        server_with_code(hub)
        server = hub.server_url(STUDENT)
        uid = pwd.getpwnam(hub.account(STUDENT)).pw_uid
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = signed_in(browser, hub, STUDENT, "class-password")
                open_app_py(page, server)
                page.goto(f"{server}lab")
                page.locator("#jp-main-dock-panel").wait_for()
                idle_pss = idle_server_pss_mb(hub)
                assert not language_server_processes(uid)
                open_in_editor(page, server, "app.py")
                python = completion_latencies(
                    page, ["Control+End"], "os.pa", "path", options.rounds
                )
                open_in_editor(page, server, "web/src/App.jsx")
                jsx = completion_latencies(
                    page,
                    ["Control+Home", *["ArrowDown"] * 3, "End"],
                    "cou",
                    "count",
                    options.rounds,
                )
                servers_pss = language_servers_pss_mb(uid)
            finally:
                browser.close()
        pid = hub.api("GET", f"/users/{STUDENT}").json()["servers"][""]["state"]["pid"]
        busy_pss = round(memory_kb(pid)["pss"] / 1024, 1)
    finally:
        hub.stop()
    result = {
        "benchmark": "codeintel",
        "keystroke_to_completion_list": {
            "python": latency_summary(python, digits=1),
            "jsx": latency_summary(jsx, digits=1),
        },
        "server_pss_mb": {"idle_no_code_file": idle_pss, "after": busy_pss},
        "language_servers_pss_mb": servers_pss,
    }
    print(json.dumps(result))
    typed = result["keystroke_to_completion_list"]
    servers = ", ".join(f"{name} {mb} MB" for name, mb in servers_pss.items())
    print(
        f"codeintel: edit to completion list p50 python {typed['python']['p50_ms']} ms, "
        f"jsx {typed['jsx']['p50_ms']} ms ({options.rounds} each); PSS of {servers} beside "
        f"the idle server's {idle_pss} MB"
    )


if __name__ == "__main__":
    main()
