"""Preview speed: the preview origin vs the app's port direct vs the stock route.

The app is a Node.js HTTP server started from a workspace terminal on $PORT: a 1 KB page,
and a page that pulls 200 small ES modules (what a Vite dev page does). One run measures,
side by side and alternately:

- ``direct``: the app's own port (inside the server's network namespace when isolated);
- ``preview``: Code Pilot's preview origin (the gateway, signed-in with its cookie);
- ``stock``: jupyter-server-proxy's ``/proxy/<port>/`` in a stock jupyter-server behind
  the same hub proxy (the stock way to reach an app in JupyterHub);
- ``one_hop``: what one plain hop costs on this machine, the reference for the preview's
  ratio to direct: configurable-http-proxy (the hub's own proxy, in Node.js) routing
  everything to the same app started on the host's loopback, against that app direct
  (``host_direct``).

Figures: requests/s and p50 latency for the 1 KB page with 8 keep-alive clients, and the
time to load the 200-module page with 6 connections, as a browser does over HTTP/1.1;
and the gateway's CPU time per 1 KB request (user + system, from /proc), which a busy
machine changes less than it changes requests/s.

Then the 200-module page in Chromium, as a student sees it: from navigation to the load
event (every module fetched and run), its cache off, in turns through the preview origin
(signed in as a viewer is), the app on the host's loopback (``host_direct``: a browser
cannot reach into a server's namespace) and the plain hop in front of it. Without
Chromium (``make chromium``) that part is left out and the JSON says why.
"""

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import requests
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from codepilot_spawner.services.preview.appconnection import make_connector
from codepilot_spawner.services.preview.hosts import PreviewDomain
from tests.browser.chromium import chromium_missing_reason, launch_chromium
from tests.browser.lab import log_in
from tests.support.hubtools import (
    REPO_ROOT,
    free_port,
    login,
    start_hub,
    wait_answering,
    wait_until,
)
from tests.support.localhost import resolve_localhost_subdomains
from tests.support.procfs import cpu_seconds, gateway_pid
from tests.support.terminals import run_in_terminal

CONCURRENCY = 8
SECONDS = 4
ROUNDS = 3
MODULES = 200
BROWSER_CONNECTIONS = 6
BROWSER_ROUNDS = 7  # page loads of each kind in Chromium, after one to warm up
# Navigation start to the end of the load event, which waits for every module script.
PAGE_LOAD_MS = """() => {
  const [navigation] = performance.getEntriesByType("navigation");
  return navigation.loadEventEnd - navigation.startTime;
}"""
# Modules the page fetched with a 200 (a failed one would not hold up the load event).
MODULES_FETCHED = """() => performance.getEntriesByType("resource")
  .filter((entry) => /\\/m\\d+\\.js$/.test(entry.name) && entry.responseStatus === 200).length"""
# The app, a shell command that serves on $PORT; in a terminal it runs in the background.
APP_COMMAND = (
    "node -e \"const b='x'.repeat(1024);const n=" + str(MODULES) + ";"
    "const page='<html>'+Array.from({length:n},(_,i)=>"
    "'<script type=module src=/m'+i+'.js></script>').join('');"
    "require('http').createServer((q,r)=>{"
    "if(q.url==='/modules'){r.writeHead(200,{'content-type':'text/html'});return r.end(page)}"
    "if(q.url.startsWith('/m')){r.writeHead(200,{'content-type':'text/javascript'});"
    "return r.end('export const v='+JSON.stringify(q.url)+';')}"
    "r.writeHead(200,{'content-type':'text/plain'});r.end(b)})"
    '.listen(+process.env.PORT)"'
)
APP = APP_COMMAND + " & echo app-$((6*7))"
STOCK_CONFIG = REPO_ROOT / "tests" / "benchmarks" / "stock_servers.py"
PROXY = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"


async def load(url: str, headers: dict, make_connection_pool) -> dict:
    """Requests/s and p50 latency for the 1 KB page, CONCURRENCY keep-alive clients."""
    done, latencies = 0, []
    deadline = time.perf_counter() + SECONDS
    async with aiohttp.ClientSession(connector=make_connection_pool(), headers=headers) as session:

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                async with session.get(url) as response:
                    body = await response.read()
                    assert response.status == 200, (url, response.status)
                    assert len(body) == 1024, len(body)
                latencies.append(time.perf_counter() - sent)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return {
        "rps": done / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "requests": done,
    }


async def module_page(base: str, headers: dict, make_connection_pool) -> float:
    """Seconds to fetch the page and its 200 modules over 6 connections."""
    async with aiohttp.ClientSession(connector=make_connection_pool(), headers=headers) as session:
        started = time.perf_counter()
        async with session.get(base + "modules") as response:
            page = await response.text()
        queue = [f"{base}m{i}.js" for i in range(page.count("<script"))]
        assert len(queue) == MODULES

        async def fetcher():
            while queue:
                async with session.get(queue.pop()) as module:
                    assert module.status == 200
                    await module.read()

        await asyncio.gather(*(fetcher() for _ in range(BROWSER_CONNECTIONS)))
        return time.perf_counter() - started


def browser_module_page(hub, user: str, urls: dict[str, str]) -> dict:
    """Milliseconds Chromium takes to load each of ``urls``' 200-module page (median and
    best of BROWSER_ROUNDS, in turns), signed in to the preview first."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context().new_page()
            log_in(page, hub.url, user, "class-password", next_path="/hub/home")
            page.wait_for_url("**/hub/home**")
            page.goto(urls["preview"])  # the preview's sign-in, then its page
            assert page.url.startswith(urls["preview"]), page.url
            page.context.new_cdp_session(page).send(
                "Network.setCacheDisabled", {"cacheDisabled": True}
            )
            times = {kind: [] for kind in urls}
            for round_number in range(BROWSER_ROUNDS + 1):
                for kind, url in urls.items():
                    page.goto(url + "modules", wait_until="load")
                    fetched = page.evaluate(MODULES_FETCHED)
                    assert fetched == MODULES, (kind, fetched)
                    if round_number:  # the first warms up each origin's connections
                        times[kind].append(page.evaluate(PAGE_LOAD_MS))
        finally:
            browser.close()
    return {
        kind: {"median_ms": round(statistics.median(values), 1), "best_ms": round(min(values), 1)}
        for kind, values in times.items()
    }


def start_app(hub, user: str) -> tuple[str, dict]:
    hub.create_user(user)
    server = hub.start_server(user)
    token = hub.user_token(user)
    ws = hub.open_terminal(user, token)
    # A stock server's terminals do not say the port; the spawner's state does.
    run_in_terminal(ws, f"export PORT={server['state']['app_port']}; {APP}", "app-42")
    return token, server["state"], ws


@contextlib.contextmanager
def one_hop():
    """The app on the host's loopback, and configurable-http-proxy in front of it: the
    app's URL and the proxy's, both answering."""
    app_port, proxy_port = free_port(), free_port()
    app = subprocess.Popen(
        ["bash", "-c", f"exec {APP_COMMAND}"], env={**os.environ, "PORT": str(app_port)}
    )
    proxy = subprocess.Popen(
        [
            *(str(PROXY), "--ip", "127.0.0.1", "--port", str(proxy_port)),
            *("--api-ip", "127.0.0.1", "--api-port", str(free_port())),
            *("--default-target", f"http://127.0.0.1:{app_port}", "--log-level", "error"),
        ],
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex()},
    )
    try:
        app_url, proxy_url = f"http://127.0.0.1:{app_port}/", f"http://127.0.0.1:{proxy_port}/"
        for process, url in ((app, app_url), (proxy, proxy_url)):
            wait_answering(process, lambda url=url: requests.get(url, timeout=5).ok, 30, url)
        yield app_url, proxy_url
    finally:
        for process in (app, proxy):
            process.terminate()
            process.wait()


def main():
    # Without the per-preview pace: one preview's rate measures the gateway's cost.
    hub = start_hub(
        env={"CODEPILOT_HUB_EXTRA_CONFIG": str(STOCK_CONFIG), "CODEPILOT_PREVIEW_RATE": "0"}
    )
    terminals, hop_processes = [], contextlib.ExitStack()
    try:
        host_app, hop = hop_processes.enter_context(one_hop())
        _, state, ws = start_app(hub, "bench-preview")
        stock_token, stock_state, stock_ws = start_app(hub, "stock-preview")
        terminals += [ws, stock_ws]
        preview = PreviewDomain("preview.localhost", "http", hub.preview_port).url("bench-preview")
        with resolve_localhost_subdomains():
            browser = login(hub, "bench-preview")
            wait_until(
                lambda: browser.get(preview, headers={"Sec-Fetch-Mode": "navigate"}).ok,
                30,
                message="the app behind the preview",
            )
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies if "preview" in c.domain)
        gateway = f"http://127.0.0.1:{hub.preview_port}/"
        stock = f"{hub.server_url('stock-preview')}proxy/{stock_state['app_port']}/"
        stock_headers = {"Authorization": f"token {stock_token}"}
        wait_until(
            lambda: requests.get(stock, headers=stock_headers, timeout=30).ok,
            30,
            message="the app behind the stock route",
        )
        direct = f"http://127.0.0.1:{state['app_port']}/"
        targets = {
            # (url, headers, connector factory): direct goes into the server's namespace.
            "direct": (direct, {}, lambda: make_connector(state.get("netns", ""))),
            "preview": (
                gateway,
                # As a browser sends them from the preview's own page (on localhost).
                {"Host": preview.split("/")[2], "Cookie": cookie, "Sec-Fetch-Site": "same-origin"},
                lambda: aiohttp.TCPConnector(limit=CONCURRENCY),
            ),
            "stock": (stock, stock_headers, lambda: aiohttp.TCPConnector(limit=CONCURRENCY)),
            "host_direct": (host_app, {}, lambda: aiohttp.TCPConnector(limit=CONCURRENCY)),
            "one_hop": (hop, {}, lambda: aiohttp.TCPConnector(limit=CONCURRENCY)),
        }
        samples = {kind: {"rps": [], "p50_ms": [], "modules_s": []} for kind in targets}
        gateway_process = gateway_pid(hub)
        gateway_cpu = []  # seconds per 1 KB request, each round
        for _ in range(ROUNDS):
            for kind, (url, headers, connector) in targets.items():
                used_before = cpu_seconds(gateway_process)
                figures = asyncio.run(load(url, headers, connector))
                if kind == "preview":
                    used = cpu_seconds(gateway_process) - used_before
                    gateway_cpu.append(used / figures["requests"])
                samples[kind]["rps"].append(figures["rps"])
                samples[kind]["p50_ms"].append(figures["p50_ms"])
                seconds = asyncio.run(module_page(url, headers, connector))
                samples[kind]["modules_s"].append(seconds)
        if (browser_missing := chromium_missing_reason()) is None:
            with resolve_localhost_subdomains():
                in_browser = browser_module_page(
                    hub,
                    "bench-preview",
                    {"preview": preview, "host_direct": host_app, "one_hop": hop},
                )
        else:
            in_browser = {"left_out": browser_missing}
    finally:
        for terminal in terminals:
            terminal.close()
        hop_processes.close()
        hub.stop()

    result = {
        kind: {
            "rps": round(max(values["rps"]), 1),
            "p50_ms": round(min(values["p50_ms"]), 2),
            "modules_page_s": round(min(values["modules_s"]), 3),
        }
        for kind, values in samples.items()
    }
    result["preview"]["gateway_cpu_us_per_request"] = round(min(gateway_cpu) * 1e6)

    def over(kind: str, reference: str, figure: str, digits: int) -> float:
        return round(result[kind][figure] / result[reference][figure], digits)

    ratio = over("preview", "direct", "rps", 3)
    modules_ratio = over("preview", "direct", "modules_page_s", 2)
    hop_ratio = over("one_hop", "host_direct", "rps", 3)
    hop_modules_ratio = over("one_hop", "host_direct", "modules_page_s", 2)
    vs_stock = over("preview", "stock", "rps", 1)
    browser_ratios = {}
    if "left_out" not in in_browser:
        for kind in ("preview", "one_hop"):
            browser_ratios[f"chromium_{kind}_times_direct"] = round(
                in_browser[kind]["median_ms"] / in_browser["host_direct"]["median_ms"], 2
            )
    print(
        json.dumps(
            {
                "benchmark": "preview",
                "concurrency": CONCURRENCY,
                "isolated": bool(state.get("netns")),
                **result,
                "ratio_to_direct": ratio,
                "modules_page_times_direct": modules_ratio,
                "one_hop_ratio_to_direct": hop_ratio,
                "one_hop_modules_page_times_direct": hop_modules_ratio,
                "times_stock": vs_stock,
                "chromium_modules_page": in_browser,
                **browser_ratios,
            }
        )
    )
    print(
        f"preview 1 KB page: {result['preview']['rps']} req/s through the preview origin, "
        f"{result['direct']['rps']} direct ({ratio} of direct), {result['stock']['rps']} "
        f"through jupyter-server-proxy ({vs_stock}x stock); p50 "
        f"{result['preview']['p50_ms']} / {result['direct']['p50_ms']} / "
        f"{result['stock']['p50_ms']} ms; 200-module page "
        f"{result['preview']['modules_page_s']} / {result['direct']['modules_page_s']} / "
        f"{result['stock']['modules_page_s']} s; the gateway's CPU "
        f"{result['preview']['gateway_cpu_us_per_request']} µs per request; one plain hop "
        f"(configurable-http-proxy) {hop_ratio} of direct, 200-module page "
        f"{hop_modules_ratio}x direct (the preview's: {modules_ratio}x)"
    )
    if browser_ratios:
        print(
            f"in Chromium, the 200-module page loads in {in_browser['preview']['median_ms']} ms "
            f"through the preview origin, {in_browser['host_direct']['median_ms']} ms direct "
            f"({browser_ratios['chromium_preview_times_direct']}x), "
            f"{in_browser['one_hop']['median_ms']} ms through one plain hop "
            f"({browser_ratios['chromium_one_hop_times_direct']}x); medians of {BROWSER_ROUNDS}"
        )


if __name__ == "__main__":
    main()
