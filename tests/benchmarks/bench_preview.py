"""Preview throughput: requests per second for a 1 KB page, via the preview URL vs direct.

The app is a Node.js HTTP server started from a workspace terminal on $PORT. The same
client (aiohttp, keep-alive, fixed concurrency) loads it straight on 127.0.0.1:$PORT and
through hub proxy -> user server -> preview route, alternately, in one run. Two more
figures through the same hub proxy and user server say where the time goes: the
server's own ``/api/status`` (no proxying inside it) and jupyter-server-proxy's stock
``/proxy/<port>/`` route to the same app.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.hubtools import open_terminal, run_in_terminal, start_hub, wait_until

CONCURRENCY = 8
SECONDS = 4
ROUNDS = 3
APP = (
    "node -e \"const b='x'.repeat(1024);require('http').createServer((q,r)=>"
    "{r.writeHead(200,{'content-type':'text/plain'});r.end(b)})"
    ".listen(+process.env.PORT,'127.0.0.1')\" & echo app-$((6*7))"
)


async def requests_per_second(url: str, headers: dict, size: int | None = 1024) -> float:
    done = 0
    deadline = time.perf_counter() + SECONDS
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.get(url) as response:
                    body = await response.read()
                    assert response.status == 200, response.status
                    assert size is None or len(body) == size, len(body)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - started)


def main():
    import requests

    hub = start_hub()
    try:
        hub.create_user("bench-preview")
        server = hub.start_server("bench-preview")
        token = hub.user_token("bench-preview")
        headers = {"Authorization": f"token {token}"}
        port = server["state"]["preview_port"]
        preview = f"{hub.server_url('bench-preview')}preview/"
        with open_terminal(hub, "bench-preview", token) as ws:
            run_in_terminal(ws, APP, "app-42")
            wait_until(
                lambda: requests.get(preview, headers=headers).status_code == 200,
                30,
                message="the app behind the preview",
            )
            server_url = hub.server_url("bench-preview")
            targets = {
                "direct": (f"http://127.0.0.1:{port}/", {}, 1024),
                "preview": (preview, headers, 1024),
                "jsp_proxy_route": (f"{server_url}proxy/{port}/", headers, 1024),
                "server_api_status": (f"{server_url}api/status", headers, None),
            }
            samples = {kind: [] for kind in targets}
            for _ in range(ROUNDS):
                for kind, (url, url_headers, size) in targets.items():
                    samples[kind].append(asyncio.run(requests_per_second(url, url_headers, size)))
    finally:
        hub.stop()

    result = {kind: {"rps": round(max(values), 1)} for kind, values in samples.items()}
    result["ratio"] = round(result["preview"]["rps"] / result["direct"]["rps"], 3)
    print(json.dumps({"benchmark": "preview_throughput", "concurrency": CONCURRENCY, **result}))
    print(
        f"preview 1 KB page: {result['preview']['rps']} req/s through the preview URL vs "
        f"{result['direct']['rps']} req/s direct (ratio {result['ratio']}); through the same "
        f"proxy, jupyter-server-proxy's /proxy/<port>/ {result['jsp_proxy_route']['rps']} "
        f"req/s, the server's /api/status {result['server_api_status']['rps']} req/s"
    )


if __name__ == "__main__":
    main()
