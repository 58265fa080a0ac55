"""Terminals of a user server, driven as JupyterLab drives them: REST to create, then
terminado's websocket protocol (``["stdin", text]`` in, ``["stdout", text]`` out)."""

import json
import time

import requests
import websockets.sync.client


def open_terminal(server_url: str, token: str, session: requests.Session | None = None):
    """Create a terminal on the user server at ``server_url`` (ending in ``/``), through
    whatever proxy that URL goes through, and connect its websocket."""
    headers = {"Authorization": f"token {token}"}
    response = (session or requests).post(f"{server_url}api/terminals", headers=headers, timeout=30)
    response.raise_for_status()
    return connect_terminal(server_url, token, response.json()["name"])


def connect_terminal(server_url: str, token: str, name: str, **options):
    """Attach a websocket to terminal ``name`` of the server at ``server_url``, as a
    JupyterLab Terminal widget does; ``options`` for ``websockets`` (``max_queue``)."""
    headers = {"Authorization": f"token {token}"}
    ws_base = "ws" + server_url[len("http") :]
    return websockets.sync.client.connect(
        f"{ws_base}terminals/websocket/{name}",
        additional_headers=headers,
        open_timeout=30,
        **options,
    )


def run_in_terminal(ws, command: str, marker: str, timeout: float = 30) -> str:
    """Type `command`, then read output until `marker` appears; returns all output read."""
    ws.send(json.dumps(["stdin", command + "\r"]))
    output = ""
    deadline = time.monotonic() + timeout
    while marker not in output:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {marker!r} in terminal output:\n{output}")
        message = json.loads(ws.recv(timeout=remaining))
        if message[0] == "stdout":
            output += message[1]
    return output


def echo_round_trip(ws, number: int) -> float:
    """Seconds from typing `echo $((n+0))` + Enter until its output and the next prompt.

    The shell writes the echoed line, the output and the prompt in separate writes; with
    Nagle's algorithm on, the later ones wait for the client's delayed ACK.
    """
    expected = f"{number}\r\n"  # the output line; the echoed command reads "n+0))"
    started = time.perf_counter()
    ws.send(json.dumps(["stdin", f"echo $(({number}+0))\r"]))
    output = ""
    while expected not in output or not output.endswith("$ "):
        message = json.loads(ws.recv(timeout=30))
        if message[0] == "stdout":
            output += message[1]
    return time.perf_counter() - started


def drain(ws, quiet: float = 0.3) -> None:
    """Read and drop output until the terminal has been quiet for ``quiet`` seconds."""
    while True:
        try:
            ws.recv(timeout=quiet)
        except TimeoutError:
            return
