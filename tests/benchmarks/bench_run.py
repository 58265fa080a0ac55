"""Run pressed to the app answering: the Run button against typing the command yourself.

One jupyter-server per starter with the Code Pilot extension, on a project copied from
the starter, its npm packages installed first (from the tests' npm cache), as on every
Run after the first. Per round, interleaved so both see the same noise:

- **run**: ``POST codepilot/api/run`` (what the Run button sends), then the app's port
  polled every 10 ms until it answers; also when ``GET codepilot/api/run`` first says
  ``running`` (what the status bar shows);
- **terminal** (the floor): a terminal opened over the REST API and its websocket, the
  same command typed into it, the port polled the same way, as a script would.

Each round ends the app (Stop, or the terminal deleted) and waits for its port to close.
Loopback only. Prints JSON, then one summary line.
"""

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from server_extension.run.command import find_run_command
from server_extension.starters import starter_dir
from tests.support.hubtools import free_port
from tests.support.jupyterserver import start_jupyter_server
from tests.support.npmcache import fill_npm_cache, install_from_cache
from tests.support.terminals import connect_terminal

POLL = 0.01
STARTERS = "flask,node-express,react-vite"


def answering(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code < 500
    except requests.RequestException:
        return False


def port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def wait(predicate, timeout: float = 60) -> float:
    """Seconds until ``predicate()`` holds."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(predicate)
        time.sleep(POLL)
    return time.monotonic() - started


def run_button(server, port: int) -> dict:
    started = time.monotonic()
    server.api("POST", "/codepilot/api/run").raise_for_status()
    wait(lambda: answering(port))
    answered = time.monotonic() - started
    wait(lambda: server.api("GET", "/codepilot/api/run").json()["state"] == "running")
    shown = time.monotonic() - started
    server.api("DELETE", "/codepilot/api/run").raise_for_status()
    wait(lambda: port_closed(port))
    return {"answering_s": answered, "status_running_s": shown}


def typed_in_terminal(server, port: int, command: str) -> dict:
    name = server.api("POST", "/api/terminals").json()["name"]
    try:
        with connect_terminal(f"{server.url}/", server.token, name) as ws:
            started = time.monotonic()
            ws.send(json.dumps(["stdin", f"cd {server.root} && {command}\r"]))
            wait(lambda: answering(port))
            answered = time.monotonic() - started
    finally:
        server.api("DELETE", f"/api/terminals/{name}")
    wait(lambda: port_closed(port))
    return {"answering_s": answered}


def project_from(starter: str) -> Path:
    """A copy of ``starter``, its npm packages installed (the Run timed is not the first)."""
    root = Path(tempfile.mkdtemp(prefix=f"codepilot-bench-run-{starter}-"))
    shutil.copytree(starter_dir(starter), root, dirs_exist_ok=True)
    if (root / "package.json").is_file():
        fill_npm_cache(starter)
        install_from_cache(root)
    return root


def summary(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="samples per starter and way")
    parser.add_argument("--starters", default=STARTERS, help="starters to run, comma-separated")
    options = parser.parse_args()
    result = {"benchmark": "run", "rounds": options.rounds, "starters": {}}
    for starter in options.starters.split(","):
        root = project_from(starter)
        command = find_run_command(root).command
        port = free_port()
        server = start_jupyter_server(root, env={"CODEPILOT_PREVIEW_PORT": str(port)})
        try:
            samples = {"run": [], "run_status": [], "terminal": []}
            for _ in range(options.rounds + 1):  # the first round warms both up
                ours = run_button(server, port)
                floor = typed_in_terminal(server, port, command)
                samples["run"].append(ours["answering_s"])
                samples["run_status"].append(ours["status_running_s"])
                samples["terminal"].append(floor["answering_s"])
        finally:
            server.api("DELETE", "/codepilot/api/run")
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
        result["starters"][starter] = {
            "command": command,
            **{way: summary(values[1:]) for way, values in samples.items()},
        }
    print(json.dumps(result))
    print(
        "run to answering, median: "
        + "; ".join(
            f"{starter} Run {row['run']['median_s']} s (status Running "
            f"{row['run_status']['median_s']} s), typed in a terminal "
            f"{row['terminal']['median_s']} s"
            for starter, row in result["starters"].items()
        )
    )


if __name__ == "__main__":
    main()
