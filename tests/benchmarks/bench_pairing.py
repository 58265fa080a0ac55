"""Live pairing: a keystroke in one browser to the character on screen in the other.

One Chromium, two contexts (a student and her teacher) with ``app.py`` of the student's
server open, through the hub's proxy on loopback. The student types ``--keystrokes``
characters at a typist's pace; the time from each keydown in her page to the teacher's
editor showing that many typed characters (a MutationObserver there) is the latency. Both
pages run in one browser process, so their ``performance.timeOrigin + now()`` clocks
compare. Then the PSS of the student's idle server (forked, the document's room open
for the collaboration) against a hub with ``CODEPILOT_COLLABORATION=false`` serving the
same page: nothing to compare the latency against (without collaboration the teacher sees
nothing until a reload).
"""

import argparse
import json
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.browser.chromium import VIEWPORT, launch_chromium
from tests.browser.ide_attack import open_server
from tests.browser.lab import fill_login_form, wait_for_lab
from tests.support.hubtools import login, save_text, start_hub, wait_until
from tests.support.procfs import memory_kb
from tests.support.timing import latency_summary

STUDENT, TEACHER, TEACHER_PASSWORD = "maya", "tess", "teacher-password"
EDITOR = ".jp-FileEditor:visible .cm-content"
TYPED = "q"  # not in the file before: the teacher's page counts it
KEY_INTERVAL_MS = 60  # a fast typist: about 1,000 characters a minute
IDLE_SECONDS = 5  # after the last page load, before reading the server's memory

RECORD_KEYDOWNS = """() => {
  window.keydowns = [];
  document.addEventListener("keydown",
    () => window.keydowns.push(performance.timeOrigin + performance.now()), true);
}"""
RECORD_ARRIVALS = """([selector, typed]) => {
  window.arrivals = [];
  const editor = document.querySelector(selector);
  let seen = 0;
  new MutationObserver(() => {
    const count = editor.textContent.split(typed).length - 1;
    for (; seen < count; seen++) window.arrivals.push(performance.timeOrigin + performance.now());
  }).observe(editor, {childList: true, subtree: true, characterData: true});
}"""


def signed_in(browser, hub, user: str, password: str):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(f"{hub.url}/hub/login")
    fill_login_form(page, user, password)
    page.wait_for_url(lambda url: "/hub/login" not in url)
    return page


def open_app_py(page, server: str) -> None:
    open_server(page, f"{server}lab/tree/app.py")
    wait_for_lab(page)
    page.locator(EDITOR).wait_for()


def hub_with_app_py(collaboration: bool):
    hub = start_hub(
        env={
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
            "CODEPILOT_COLLABORATION": str(collaboration).lower(),
        }
    )
    login(hub, STUDENT)
    hub.start_server(STUDENT)
    admin = {"Authorization": f"token {hub.token}"}
    save_text(hub.server_url(STUDENT), "app.py", "print('hello')\n", admin).raise_for_status()
    return hub


def idle_server_pss_mb(hub) -> float:
    time.sleep(IDLE_SECONDS)  # what the pages' loading started has settled
    pid = hub.api("GET", f"/users/{STUDENT}").json()["servers"][""]["state"]["pid"]
    return round(memory_kb(pid)["pss"] / 1024, 1)


def keystroke_latencies(browser, keystrokes: int) -> tuple[list[float], float]:
    """Latencies in ms, and the student's server PSS once idle, collaboration on."""
    hub = hub_with_app_py(collaboration=True)
    try:
        server = hub.server_url(STUDENT)
        student = signed_in(browser, hub, STUDENT, "class-password")
        teacher = signed_in(browser, hub, TEACHER, TEACHER_PASSWORD)
        for page in (student, teacher):
            open_app_py(page, server)
        student.locator(EDITOR).click()
        student.keyboard.press("Control+End")
        student.evaluate(RECORD_KEYDOWNS)
        teacher.evaluate(RECORD_ARRIVALS, [".jp-FileEditor .cm-content", TYPED])  # one open
        for _ in range(keystrokes):
            student.keyboard.type(TYPED)
            student.wait_for_timeout(KEY_INTERVAL_MS)

        def arrived():
            return teacher.evaluate("() => window.arrivals.length") >= keystrokes

        wait_until(arrived, 60, 0.2, f"{keystrokes} keystrokes on the teacher's screen")
        downs = student.evaluate("() => window.keydowns")
        arrivals = teacher.evaluate("() => window.arrivals")
        assert len(downs) == keystrokes, len(downs)
        latencies = [arrival - down for down, arrival in zip(downs, arrivals, strict=True)]
        return latencies, idle_server_pss_mb(hub)
    finally:
        hub.stop()


def pss_without_collaboration(browser) -> float:
    hub = hub_with_app_py(collaboration=False)
    try:
        server = hub.server_url(STUDENT)
        for user, password in ((STUDENT, "class-password"), (TEACHER, TEACHER_PASSWORD)):
            open_app_py(signed_in(browser, hub, user, password), server)
        return idle_server_pss_mb(hub)
    finally:
        hub.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keystrokes", type=int, default=200)
    options = parser.parse_args()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            latencies, pss_on = keystroke_latencies(browser, options.keystrokes)
            pss_off = pss_without_collaboration(browser)
        finally:
            browser.close()
    result = {
        "benchmark": "pairing",
        "keystroke_to_other_screen": latency_summary(latencies, digits=1),
        "idle_server_pss_mb": {"collaboration": pss_on, "off": pss_off},
        "added_pss_mb": round(pss_on - pss_off, 1),
    }
    print(json.dumps(result))
    typed = result["keystroke_to_other_screen"]
    print(
        f"pairing: keystroke to the other browser's screen p50 {typed['p50_ms']} ms, "
        f"p99 {typed['p99_ms']} ms ({typed['samples']} keystrokes); idle server PSS "
        f"{pss_on} MB with collaboration, {pss_off} MB off (+{result['added_pss_mb']} MB)"
    )


if __name__ == "__main__":
    main()
