"""Watching a class of 100: the class page's polling cost against JupyterHub's admin panel.

One Code Pilot hub, 100 students added by the admin, a handful with running servers, some
started and stopped, the rest never started. Two ways for a teacher to watch them, side
by side in one run:

- the class page: the teacher's tab polls ``<service>/api/class`` (every ``POLL_MS`` of
  classpage.js), which answers from a snapshot its service refreshes every few seconds
  (one user list from the hub, each running server's sync state);
- stock: JupyterHub's admin panel, as it loads the user list: ``GET /hub/api/users`` with
  ``include_stopped_servers``, its page size (``api_page_default_limit``, 50) and the
  admin's cookie and XSRF token, every page the class needs.

Per poll, over a burst of back-to-back polls: latency p50/p95, bytes on the wire, and
the hub's CPU time (``/proc/<hub>/stat``, utime + stime, before and after), the hub's
idle rate (its own background work: the culler, the preview gateway) taken off; the
class page's service's own CPU apart. The service refreshes its snapshot whether anyone
looks or not: that loop's hub CPU per second is measured on its own, in alternate
windows with the service running and paused (SIGSTOP); the stock side is measured with
the service paused, so it pays nothing for it. One viewer polling every ``POLL_MS``
pays the loop alone: its hub CPU per poll is the burst's plus the loop's for ``POLL_MS``.

Then a stopped project's tab: a student's JupyterLab in Chromium, a terminal open, its
server stopped under it; requests and sockets the tab opens in 15 s, and the hub's CPU
time meanwhile (the stop's own included). Ours, and stock JupyterLab (the same server
with ``@codepilot/lab``'s stopped-server plugin disabled in the student's
``~/.jupyter/labconfig``); the project alone (the hub answers the tab) and beside the
running default project (the default server answers).
"""

import argparse
import json
import math
import os
import re
import signal
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import requests
from playwright.sync_api import sync_playwright

from codepilot_spawner.services.classpage.hubclient import PAGINATION
from tests.browser.chromium import VIEWPORT, chromium_missing_reason, launch_chromium
from tests.browser.lab import (
    UI_TIMEOUT_MS,
    dismiss_news_prompt,
    lab_page_config,
    launcher_card,
    log_in,
    wait_for_lab,
)
from tests.browser.tabwatch import request_kind, requests_after
from tests.support.hubtools import REPO_ROOT, login, start_hub, wait_until
from tests.support.procfs import cpu_seconds, stat_fields
from tests.support.timing import percentile

TEACHER, TEACHER_PASSWORD = "tess", "teacher-password"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-for-the-benchmark"
STUDENT_PASSWORD = "class-password"  # what start_hub sets
ADMIN_PAGE_SIZE = 50  # JupyterHub's api_page_default_limit, the admin panel's page size
CLASS_PAGE_JS = (
    REPO_ROOT / "codepilot_spawner" / "services" / "classpage" / "static" / "classpage.js"
)
STOPPED_PLUGIN = "@codepilot/lab:stopped-server"
WATCH_S = 15  # tests/browser/test_stopped_tab.py's window
VIEWERS = (1, 3, 10)  # teachers and tabs watching at once, for the hub's CPU per poll


def class_page_poll_seconds() -> float:
    """How often the class page's tab asks (classpage.js's ``POLL_MS``)."""
    return int(re.search(r"POLL_MS = (\d+)", CLASS_PAGE_JS.read_text()).group(1)) / 1000


def child_pid(parent: int, marker: bytes) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(stat_fields(int(entry))[1]) != parent:
                continue
            if marker in Path(f"/proc/{entry}/cmdline").read_bytes():
                return int(entry)
        except OSError:
            continue
    raise RuntimeError(f"no child of {parent} runs {marker!r}")


@contextmanager
def paused(pid: int):
    """The process stopped (SIGSTOP) for the block: it uses no CPU and asks nothing."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def wire_bytes(response: requests.Response) -> int:
    length = response.headers.get("Content-Length")
    return int(length) if length is not None else len(response.content)


class ClassPageViewer:
    """A teacher's tab on the class page: signed in through the hub's OAuth, with the
    page's XSRF token, polling ``api/class`` as classpage.js does."""

    def __init__(self, hub):
        self.session = login(hub, TEACHER, TEACHER_PASSWORD)
        self.url = hub.service_url("codepilot")
        page = self.session.get(self.url, timeout=30)  # the OAuth round trip, then the page
        page.raise_for_status()
        self.xsrf = re.search(r'<meta name="xsrf" content="([^"]+)"', page.text).group(1)

    def poll(self) -> tuple[int, dict]:
        response = self.session.get(
            self.url + "api/class",
            headers={"X-XSRFToken": self.xsrf, "Cache-Control": "no-store"},
            timeout=30,
        )
        response.raise_for_status()
        return wire_bytes(response), response.json()


class AdminPanelViewer:
    """The admin's tab on JupyterHub's admin panel: its user list request, with the
    admin's cookie and the panel's XSRF token, every page of ``ADMIN_PAGE_SIZE``."""

    def __init__(self, hub):
        self.session = login(hub, ADMIN, ADMIN_PASSWORD)
        self.api = f"{hub.url}/hub/api/users"
        panel = self.session.get(f"{hub.url}/hub/admin", timeout=30)
        panel.raise_for_status()
        self.xsrf = re.search(r'xsrf_token: "([^"]+)"', panel.text).group(1)

    def poll(self) -> tuple[int, list]:
        total, users, offset = 0, [], 0
        while offset is not None:
            params = {
                "include_stopped_servers": "1",
                "offset": offset,
                "limit": ADMIN_PAGE_SIZE,
                "name_filter": "",
                "sort": "id",
                "state": "",
                "_xsrf": self.xsrf,
            }
            response = self.session.get(
                self.api,
                params=params,
                headers={"Accept": PAGINATION, "Content-Type": "application/json"},
                timeout=30,
            )
            response.raise_for_status()
            total += wire_bytes(response)
            body = response.json()
            users.extend(body["items"])
            offset = (body["_pagination"].get("next") or {}).get("offset")
        return total, users


def burst(viewer, polls: int, hub_pid: int, idle_rate: float, service_pid=None) -> dict:
    """``polls`` back to back: latency, bytes and CPU per poll."""
    cpu = [cpu_seconds(hub_pid), cpu_seconds(service_pid) if service_pid else 0.0]
    began = time.perf_counter()
    latencies, sizes = [], []
    for _ in range(polls):
        started = time.perf_counter()
        size, _ = viewer.poll()
        latencies.append((time.perf_counter() - started) * 1000)
        sizes.append(size)
    seconds = time.perf_counter() - began
    hub_cpu = cpu_seconds(hub_pid) - cpu[0] - idle_rate * seconds
    found = {
        "polls": polls,
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "bytes_per_poll": round(statistics.mean(sizes)),
        "hub_cpu_ms_per_poll": round(max(hub_cpu, 0) * 1000 / polls, 3),
    }
    if service_pid:
        service_cpu = cpu_seconds(service_pid) - cpu[1]
        found["service_cpu_ms_per_poll"] = round(service_cpu * 1000 / polls, 3)
    return found


def cpu_rates(hub_pid: int, service_pid: int, seconds: float) -> tuple[float, float]:
    """CPU seconds per second of the hub and of the class page's service, over ``seconds``
    with nobody polling."""
    hub, service, began = cpu_seconds(hub_pid), cpu_seconds(service_pid), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    return (
        (cpu_seconds(hub_pid) - hub) / elapsed,
        (cpu_seconds(service_pid) - service) / elapsed,
    )


def refresh_loop_cost(hub_pid: int, service_pid: int, rounds: int, seconds: float) -> dict:
    """What the class page costs with nobody looking: the hub's CPU rate while its service
    refreshes, against the hub's rate while the service is paused, in alternate windows
    (the hub's own background work, the culler and the preview gateway, is in both)."""
    idle, refreshing, service = [], [], []
    for _ in range(rounds):
        with paused(service_pid):
            idle.append(cpu_rates(hub_pid, service_pid, seconds)[0])
        hub_rate, service_rate = cpu_rates(hub_pid, service_pid, seconds)
        refreshing.append(hub_rate)
        service.append(service_rate)
    return {
        "idle_hub_cpu_ms_per_s": round(statistics.mean(idle) * 1000, 2),
        "hub_cpu_ms_per_s": round((statistics.mean(refreshing) - statistics.mean(idle)) * 1000, 2),
        "service_cpu_ms_per_s": round(statistics.mean(service) * 1000, 2),
    }


def set_up_class(hub, students: list[str], running: int, stopped: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hub.create_user, students))
        list(pool.map(hub.start_server, students[: running + stopped]))
        list(pool.map(hub.stop_server, students[running : running + stopped]))


def class_is_read(viewer: ClassPageViewer, students: int, running: int) -> bool:
    """The class page's snapshot lists every student and each running server's sync."""
    rows = viewer.poll()[1]["rows"]
    up = [row for row in rows if row["state"] == "running"]
    return len(rows) == students and len(up) == running and all(row["sync"] for row in up)


def disable_stopped_plugin(hub, user: str) -> None:
    """Stock JupyterLab for ``user``: ``@codepilot/lab``'s stopped-server plugin off in
    their ``~/.jupyter/labconfig/page_config.json``, owned by their account."""
    home = hub.data_dir / "homes" / user
    config = home / ".jupyter" / "labconfig" / "page_config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"disabledExtensions": {STOPPED_PLUGIN: True}}))
    owner = home.stat()
    for path in (config.parent.parent, config.parent, config):
        os.chown(path, owner.st_uid, owner.st_gid)


def ask_to_stop(hub, user: str, project: str) -> None:
    """DELETE the server, without polling the hub for the result (the tab is measured)."""
    response = hub.api("DELETE", hub.server_path(user, project))
    assert response.status_code in (202, 204), response.text


def servers(hub, user: str) -> dict:
    return hub.api("GET", f"/users/{user}").json()["servers"]


def stopped_tab(browser, hub, user: str, project: str, stock: bool) -> dict:
    """Requests and sockets of a tab in the ``WATCH_S`` s after its project stops."""
    hub.create_user(user)
    hub.start_server(user)
    if project:
        hub.start_server(user, project)
    if stock:
        disable_stopped_plugin(hub, user)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        next_path = f"/user/{user}/{project}/lab" if project else f"/user/{user}/lab"
        log_in(page, hub.url, user, STUDENT_PASSWORD, next_path=next_path)
        wait_for_lab(page)
        dismiss_news_prompt(page)
        disabled = STOPPED_PLUGIN in lab_page_config(page).get("disabledExtensions", [])
        assert disabled == stock, f"{STOPPED_PLUGIN} disabled: {disabled}, stock: {stock}"
        launcher_card(page, "Terminal").click()  # as when an app runs
        page.locator(".jp-Terminal .xterm-screen").wait_for(timeout=UI_TIMEOUT_MS)
        before = cpu_seconds(hub.process.pid)
        kinds = requests_after(
            page,
            lambda: ask_to_stop(hub, user, project),
            WATCH_S,
            lambda url: request_kind(url, user, project),
        )
        hub_cpu = cpu_seconds(hub.process.pid) - before
        wait_until(lambda: project not in servers(hub, user), 60, 0.5, f"{user}/{project} stopped")
    finally:
        context.close()
        if project:
            hub.stop_server(user)
    return {
        "requests": len(kinds),
        "hub_cpu_ms": round(hub_cpu * 1000),
        "most": dict(Counter(kinds).most_common(3)),
    }


def stopped_tabs(hub) -> dict:
    result = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            for case, project in (("alone", ""), ("beside_default", "web")):
                result[case] = {
                    kind: stopped_tab(
                        browser, hub, f"tab-{kind}-{project or 'default'}", project, stock
                    )
                    for kind, stock in (("codepilot", False), ("stock", True))
                }
        finally:
            browser.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--running", type=int, default=5, help="students with a running server")
    parser.add_argument("--stopped", type=int, default=20, help="students started, then stopped")
    parser.add_argument("--polls", type=int, default=100, help="polls per burst")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate 10 s windows, service paused / running"
    )
    options = parser.parse_args()
    reason = chromium_missing_reason()
    if reason:
        sys.exit(reason)
    students = [f"student{number:03d}" for number in range(options.students)]
    every = class_page_poll_seconds()
    result = {
        "benchmark": "class_page",
        "cpus": os.cpu_count(),
        "students": options.students,
        "running": options.running,
        "stopped": options.stopped,
        "poll_every_s": every,
    }
    hub = start_hub(
        env={
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
            "CODEPILOT_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )
    try:
        set_up_class(hub, students, options.running, options.stopped)
        hub_pid = hub.process.pid
        service_pid = child_pid(hub_pid, b"codepilot_spawner.services.classpage")
        ours, stock = ClassPageViewer(hub), AdminPanelViewer(hub)
        wait_until(
            lambda: class_is_read(ours, options.students, options.running),
            60,
            0.5,
            "the class page to list the class",
        )
        listed = len(stock.poll()[1])
        assert listed == options.students + 2, listed  # and the admin and the teacher
        loop = refresh_loop_cost(hub_pid, service_pid, options.rounds, 10)
        idle = loop["idle_hub_cpu_ms_per_s"] / 1000
        with paused(service_pid):  # the stock side pays nothing for the class page
            stock_burst = burst(stock, options.polls, hub_pid, idle)
        our_burst = burst(ours, options.polls, hub_pid, idle, service_pid)
        result["class_page"] = {
            "requests_per_poll": 1,
            **our_burst,
            "refresh_loop": loop,
            # Viewers polling every `every` s share the loop's cost.
            "hub_cpu_ms_per_poll_by_viewers": {
                viewers: round(
                    our_burst["hub_cpu_ms_per_poll"] + loop["hub_cpu_ms_per_s"] * every / viewers,
                    2,
                )
                for viewers in VIEWERS
            },
        }
        result["admin_panel"] = {
            "requests_per_poll": math.ceil(listed / ADMIN_PAGE_SIZE),
            "page_size": ADMIN_PAGE_SIZE,
            **stock_burst,
        }
        result["stopped_tab_in_15_s"] = stopped_tabs(hub)
    finally:
        hub.stop()
    print(json.dumps(result))
    print(summary_line(result))


def summary_line(result: dict) -> str:
    ours, stock = result["class_page"], result["admin_panel"]
    loop = ours["refresh_loop"]
    viewers = "/".join(str(count) for count in VIEWERS)
    shared = "/".join(str(ms) for ms in ours["hub_cpu_ms_per_poll_by_viewers"].values())
    tabs = "; ".join(
        f"{case.replace('_', ' ')}: ours {sides['codepilot']['requests']}, "
        f"stock {sides['stock']['requests']}"
        for case, sides in result["stopped_tab_in_15_s"].items()
    )
    return (
        f"class of {result['students']} ({result['running']} running, {result['stopped']} "
        f"stopped), per poll p50/p95, bytes, hub CPU: class page {ours['p50_ms']}/"
        f"{ours['p95_ms']} ms, {ours['bytes_per_poll']} B, {ours['hub_cpu_ms_per_poll']} ms "
        f"(its refresh loop: {loop['hub_cpu_ms_per_s']} ms/s however many watch; with "
        f"{viewers} viewers every {result['poll_every_s']} s: {shared} ms); "
        f"admin panel ({stock['requests_per_poll']} pages of {stock['page_size']}) "
        f"{stock['p50_ms']}/{stock['p95_ms']} ms, {stock['bytes_per_poll']} B, "
        f"{stock['hub_cpu_ms_per_poll']} ms; a stopped tab's requests in 15 s, {tabs}"
    )


if __name__ == "__main__":
    main()
