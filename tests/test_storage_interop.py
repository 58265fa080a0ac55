"""One bucket layout for both modes: a workspace written in sync mode reads the same
through s3contents' S3ContentsManager (``storage = s3``), and the reverse."""

import tempfile
from pathlib import Path

import pytest

from codepilot_contracts import defaults

from .support.jupyterserver import start_jupyter_server
from .support.s3server import start_s3_server
from .support.sync_cli import json_lines, run_sync

pytestmark = pytest.mark.integration

BUCKET = "interop"
USER = "olga"

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": "# Shared"},
        {
            "cell_type": "code",
            "id": "c2",
            "metadata": {},
            "source": "x = 1",
            "outputs": [],
            "execution_count": None,
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture(scope="module")
def s3():
    server = start_s3_server(relay=False)
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def env_for(s3, storage: str) -> dict:
    return {
        **s3.env,
        "CODEPILOT_STORAGE": storage,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_WORKSPACE_USER": USER,
    }


def write_files(server, folder: str):
    assert server.contents("PUT", folder, json={"type": "directory"}).status_code == 201
    assert server.put_text(f"{folder}/readme.md", f"# {folder}\nünïcode\n").status_code == 201
    assert server.contents("PUT", f"{folder}/empty", json={"type": "directory"}).status_code == 201
    assert server.contents("PUT", f"{folder}/deep", json={"type": "directory"}).status_code == 201
    assert server.put_text(f"{folder}/deep/code.py", "print(42)\n").status_code == 201
    response = server.contents(
        "PUT", f"{folder}/nb.ipynb", json={"type": "notebook", "content": NOTEBOOK}
    )
    assert response.status_code == 201, response.text


def view(server, path: str):
    """What a user sees at ``path``: type and content, or child names for a folder."""
    response = server.contents("GET", path)
    assert response.status_code == 200, f"{path}: {response.text}"
    model = response.json()
    if model["type"] == "directory":
        return "directory", sorted((item["name"], item["type"]) for item in model["content"])
    if model["type"] == "notebook":
        cells = [
            (cell["cell_type"], cell["source"], cell.get("outputs"))
            for cell in model["content"]["cells"]
        ]
        return "notebook", cells
    return model["type"], model["content"]


PATHS = ["", "readme.md", "empty", "deep", "deep/code.py", "nb.ipynb"]


def test_sync_and_s3contents_read_each_others_workspaces(s3):
    root = Path(tempfile.mkdtemp(prefix="codepilot-interop-"))
    synced = start_jupyter_server(root, env_for(s3, "sync"))
    s3_only = None
    try:
        write_files(synced, "from-sync")
        # Switching modes, as a class would: s3fs caches listings from its start on.
        s3_only = start_jupyter_server(Path(tempfile.mkdtemp()), env_for(s3, "s3"))
        assert s3_only.sync_status()["storage"] == "s3"
        for path in PATHS:
            full = f"from-sync/{path}".rstrip("/")
            assert view(s3_only, full) == view(synced, full), full

        write_files(s3_only, "from-s3")
    finally:
        synced.stop()
    try:
        # As a spawner would: restore, then start the server on the restored workspace.
        done = json_lines(
            run_sync(
                "restore",
                "--root",
                str(root),
                "--progress",
                "json",
                env={
                    **s3.env,
                    "JUPYTERHUB_USER": USER,
                    "JUPYTERHUB_SERVER_NAME": "",
                    # The servers are given no prefix: they use the shared default.
                    "CODEPILOT_S3_PREFIX": defaults.S3_PREFIX,
                    "CODEPILOT_S3_BUCKET": BUCKET,
                },
            ).stdout
        )[-1]
        assert done["failed"] == {}
        assert done["downloaded"] >= 3
        assert (root / "from-s3" / "empty").is_dir()
        synced = start_jupyter_server(root, env_for(s3, "sync"))
        try:
            for path in PATHS:
                full = f"from-s3/{path}".rstrip("/")
                assert view(synced, full) == view(s3_only, full), full
        finally:
            synced.stop()
    finally:
        if s3_only is not None:
            s3_only.stop()
