"""Start a real ``jupyter server`` with Code Pilot's extension, without the hub.

Storage tests and benchmarks need many servers with different settings; a plain
jupyter-server on a free loopback port with token auth starts in a second or two.
JupyterLab and the other UI extensions are switched off to keep it quick.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .hubtools import REPO_ROOT, free_port, wait_answering
from .terminals import open_terminal

STOCK_MANAGER = "jupyter_server.services.contents.largefilemanager.AsyncLargeFileManager"

CONFIG = """
c.ServerApp.jpserver_extensions = {
    "jupyterlab": False,
    "jupyter_lsp": False,
    "notebook_shim": False,
}
"""


@dataclass
class JupyterServer:
    url: str
    token: str
    root: Path
    log_path: Path
    process: subprocess.Popen
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self):
        self.session.headers["Authorization"] = f"token {self.token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        return self.session.request(method, f"{self.url}{path}", **kwargs)

    def contents(self, method: str, path: str = "", **kwargs) -> requests.Response:
        return self.api(method, f"/api/contents/{path}", **kwargs)

    def put_text(self, path: str, text: str) -> requests.Response:
        model = {"type": "file", "format": "text", "content": text}
        return self.contents("PUT", path, data=json.dumps(model))

    def sync_status(self) -> dict:
        response = self.api("GET", "/codepilot/api/sync")
        response.raise_for_status()
        return response.json()

    def open_terminal(self):
        """A new terminal of this server and its connected websocket."""
        return open_terminal(f"{self.url}/", self.token, self.session)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, as when a node dies."""
        self.stop(signal.SIGKILL)


def start_jupyter_server(
    root: Path,
    env: dict | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 60,
) -> JupyterServer:
    """Run ``python -m jupyter_server`` on ``root`` and wait until its API answers."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = os.urandom(12).hex()
    config_dir = Path(tempfile.mkdtemp(prefix="codepilot-jupyter-config-"))
    (config_dir / "jupyter_server_config.py").write_text(CONFIG)
    log_path = config_dir / "server.log"
    server_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_RUNTIME_DIR": str(config_dir / "runtime"),
        "JUPYTER_DATA_DIR": str(config_dir / "data"),
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--FileContentsManager.delete_to_trash=False",
        "--FileContentsManager.always_delete_dir=True",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        *args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=str(root) if root.exists() else str(REPO_ROOT),
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = JupyterServer(f"http://127.0.0.1:{port}", token, root, log_path, process)

    try:
        wait_answering(
            process,
            lambda: server.api("GET", "/api/status", timeout=5).status_code == 200,
            timeout,
            "the jupyter server",
            server.log,
        )
    except TimeoutError:
        server.kill()
        raise TimeoutError(
            f"jupyter server did not answer in {timeout}s:\n{server.log()}"
        ) from None
    return server


def synced_server_fixture(bucket: str, prefix: str, user: str, **settings: str):
    """A module-scoped ``server`` fixture: a user server in sync mode on the module's
    ``s3`` fixture, its workspace keyed ``<prefix>/users/<user>/default/``, with more
    ``CODEPILOT_*`` ``settings`` (``SYNC_SAVE_TIMEOUT="3"``)."""

    @pytest.fixture(scope="module")
    def server(s3):
        env = {
            **s3.env,
            "CODEPILOT_S3_BUCKET": bucket,
            "CODEPILOT_S3_PREFIX": prefix,
            "CODEPILOT_WORKSPACE_USER": user,
            **{f"CODEPILOT_{name}": value for name, value in settings.items()},
        }
        running = start_jupyter_server(Path(tempfile.mkdtemp(prefix="codepilot-sync-")), env)
        yield running
        running.stop()

    return server
