"""A student logs in: Chromium from the login form to JupyterLab's launcher on screen.

The hubs of the class-start benchmark (``--kinds``): Code Pilot with servers forked
from the fork server, Code Pilot with plain starts (``plain_start_hub.py``), and stock
JupyterHub with SimpleLocalProcessSpawner and a stock jupyter-server (``stock_hub.py``),
all running at once and measured in turns. Each sample is a fresh browser (no cookies,
no cache) and a student whose server is stopped: open the login page, type the name and
password, submit, press Start on the spawn form when the hub shows one (Code Pilot's
starter choice, left at its default), then wait until JupyterLab shows the launcher's
tiles. A first sample per hub (Unix account and workspace created) is reported apart.
Times: login page to launcher (what the student waits), and its parts, submit to the
lab page loading and lab page to launcher.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from playwright.sync_api import sync_playwright

from tests.benchmarks.hub_kinds import HUB_CONFIGS, hub_environment
from tests.browser.chromium import VIEWPORT, chromium_missing_reason, launch_chromium
from tests.support.hubtools import start_hub

PASSWORD = "class-password"  # what start_hub gives every hub
TIMEOUT_MS = 180_000


def log_in_to_launcher(browser, hub, user: str) -> dict:
    """One student's login, in a browser context of its own; seconds of each part."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        lab_url = f"{hub.server_url(user)}lab"  # on the user's host
        arrivals = []  # when the browser first navigated to the server's lab page

        def on_navigation(frame):
            if frame == page.main_frame and frame.url.startswith(lab_url):
                arrivals.append(time.perf_counter())

        page.on("framenavigated", on_navigation)
        started = time.perf_counter()
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", PASSWORD)
        new_account = page.locator("#new_account_input")  # Code Pilot's hub asks a new name
        if new_account.count():
            new_account.check()
        submitted = time.perf_counter()
        page.click("#login_submit")
        form = page.locator("#spawn_form")
        lab = page.locator("#jp-main-dock-panel")
        form.or_(lab).first.wait_for(timeout=TIMEOUT_MS)
        if form.count():
            form.get_by_role("button", name="Start").click()
        page.locator(".jp-Launcher:visible .jp-LauncherCard").first.wait_for(timeout=TIMEOUT_MS)
        launcher = time.perf_counter()
        lab_page = arrivals[0]
    finally:
        context.close()
    return {
        "to_launcher_s": launcher - started,
        "submit_to_lab_page_s": lab_page - submitted,
        "lab_page_to_launcher_s": launcher - lab_page,
    }


def summarize(samples: list[dict]) -> dict:
    return {
        f"{name}_{stat}": round(function(sample[name] for sample in samples), 2)
        for name in samples[0]
        for stat, function in (("median", statistics.median), ("max", max))
    } | {"samples": len(samples)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="samples per hub")
    parser.add_argument(
        "--kinds", default=",".join(HUB_CONFIGS), help="hubs to compare, comma-separated"
    )
    options = parser.parse_args()
    reason = chromium_missing_reason()
    if reason:
        sys.exit(reason)
    kinds = options.kinds.split(",")
    user = "student-login"
    hubs = {}
    result = {"benchmark": "login_to_launcher", "cpus": os.cpu_count(), "root": os.geteuid() == 0}
    try:
        for kind in kinds:
            hubs[kind] = start_hub(env=hub_environment(kind))
        samples = {kind: [] for kind in kinds}
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                for kind, hub in hubs.items():
                    result[kind] = {"first": log_in_to_launcher(browser, hub, user)}
                    hub.stop_server(user, timeout=120)
                for _ in range(options.rounds):
                    for kind, hub in hubs.items():  # in turns: load from elsewhere hits all
                        samples[kind].append(log_in_to_launcher(browser, hub, user))
                        hub.stop_server(user, timeout=120)
            finally:
                browser.close()
        for kind in kinds:
            result[kind]["first"] = {k: round(v, 2) for k, v in result[kind]["first"].items()}
            result[kind].update(summarize(samples[kind]))
    finally:
        for hub in hubs.values():
            hub.stop()
    print(json.dumps(result))
    parts = ", ".join(
        f"{kind} {result[kind]['to_launcher_s_median']} s (max {result[kind]['to_launcher_s_max']})"
        for kind in kinds
    )
    print(f"login to JupyterLab launcher in Chromium, median of {options.rounds}: {parts}")


if __name__ == "__main__":
    main()
