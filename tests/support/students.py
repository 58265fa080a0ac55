"""A student of the one-machine hub: a user with a running server and a token of their own,
who types into terminals and saves files as the IDE does."""

import json
import os

import requests

from .hubtools import RunningHub, save_text, server_state
from .terminals import run_in_terminal

# A web app that starts at once, as a project's Run command.
TINY_APP = "exec python -m http.server $PORT --bind 127.0.0.1"


class Student:
    def __init__(self, hub: RunningHub, name: str):
        """Create ``name`` on ``hub`` and start their default server (both if not yet)."""
        self.hub, self.name = hub, name
        hub.create_user(name)
        hub.start_server(name)
        self.token = hub.user_token(name)
        self.url = hub.server_url(name)  # the server's URL through the proxy

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    @property
    def state(self) -> dict:
        """The spawner's state of the default server, as the hub stores it."""
        return server_state(self.hub, self.name)

    def terminal(self):
        return self.hub.open_terminal(self.name, self.token)

    def run(self, command: str, timeout: float = 60) -> str:
        """Run ``command`` in a new terminal and return its output once it has finished."""
        number = int.from_bytes(os.urandom(2), "big")
        # The marker is computed by the shell, so the echoed command line never matches.
        separator = " " if command.rstrip().endswith("&") else "; "
        with self.terminal() as ws:
            return run_in_terminal(
                ws, f"{command}{separator}echo done-$(({number}+1))", f"done-{number + 1}", timeout
            )

    def save(self, path: str, content: str) -> None:
        save_text(self.url, path, content, self.headers).raise_for_status()

    def use_run_command(self, command: str = TINY_APP) -> None:
        """The project's Run command, in its codepilot.toml."""
        self.save("codepilot.toml", f"[run]\ncommand = {json.dumps(command)}\n")

    @property
    def run_state(self) -> dict:
        """The server's own word on its project's run (``codepilot/api/run``)."""
        url = f"{self.url}codepilot/api/run"
        response = requests.get(url, headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()
