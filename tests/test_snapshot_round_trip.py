"""The react-vite starter's round trip: a real ``npm ci``, the server stopped (its dependency
snapshot taken at stop), the workspace folder deleted; the next restore brings back
``node_modules/`` and ``npm run dev`` serves the page with no install.

npm reaches the registry once; its downloads are kept in ``test-artifacts/npm-cache``
(ignored by git), so later runs install from there.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from codepilot_contracts import layout

from .support.hubtools import free_port, wait_until
from .support.jupyterserver import start_jupyter_server
from .support.npmcache import NPM_CACHE
from .support.s3server import s3_server_fixture
from .support.sync_cli import json_lines, run_sync

BUCKET = "round-trip"
USER = "vera"

s3 = s3_server_fixture(buckets=(BUCKET,))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm"),
]


def server_env(s3) -> dict:
    return {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": "",
        "CODEPILOT_WORKSPACE_USER": USER,
        "JUPYTERHUB_USER": USER,
        "JUPYTERHUB_SERVER_NAME": "",
        # Room for the snapshot at stop on a busy machine.
        "CODEPILOT_SYNC_FLUSH_TIMEOUT": "60",
    }


def restore(s3, root: Path, *options: str) -> dict:
    """The spawner's restore; its final record."""
    result = run_sync(
        "restore", "--root", str(root), "--progress", "json", *options, env=server_env(s3)
    )
    done = json_lines(result.stdout)[-1]
    assert done["event"] == "done" and not done["failed"], done
    return done


def test_react_vite_comes_back_ready_to_run(s3):
    root = Path(tempfile.mkdtemp(prefix="codepilot-round-trip-")) / "workspace"
    first = restore(s3, root, "--starter", "react-vite")
    assert first["starter"] == "react-vite"
    assert (root / "package-lock.json").is_file()

    server = start_jupyter_server(root, server_env(s3))
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--cache", str(NPM_CACHE)],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=180,
        )
        assert (root / "node_modules" / ".bin" / "vite").is_symlink()
    finally:
        assert server.stop(timeout=90) == 0
    assert "snapshot of node_modules saved" in server.log(), server.log()[-3000:]
    keys = s3.keys(BUCKET, layout.workspace_prefix("", USER))
    # node_modules is in S3 as one snapshot, never file by file (what s3contents sees).
    assert not any("node_modules/" in key for key in keys if "/.codepilot/" not in key)

    shutil.rmtree(root)
    done = restore(s3, root)
    assert done["snapshots"] == {"node_modules": "restored"}, done
    assert (root / "package.json").is_file()
    vite = root / "node_modules" / ".bin" / "vite"
    assert vite.is_symlink() and os.access(vite, os.X_OK)

    port = free_port()
    app = subprocess.Popen(
        ["npm", "run", "dev"],
        cwd=root,
        # Offline: the page must come from the restored folder, not from an install.
        env={**os.environ, "PORT": str(port), "npm_config_offline": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        page = wait_until(lambda: _get(f"http://127.0.0.1:{port}/"), timeout=60)
        assert '<div id="root">' in page.text
        module = _get(f"http://127.0.0.1:{port}/src/main.jsx")
        assert module is not None and "react" in module.text  # transformed by the plugin
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(30)

    # The files-only restore of the same workspace, for the figures (no threshold here).
    files_only = Path(tempfile.mkdtemp(prefix="codepilot-files-only-"))
    started = time.perf_counter()
    plain = restore(s3, files_only, "--no-snapshots")
    files_only_wall = time.perf_counter() - started
    assert plain["snapshots"] == {} and not (files_only / "node_modules").exists()
    print(
        json.dumps(
            {
                "restore_with_snapshot_s": done["seconds"],
                "files_only_s": plain["seconds"],
                "files_only_wall_s": round(files_only_wall, 3),
            }
        )
    )


def _get(url: str):
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None
