"""REST parity: the sync-mode contents manager answers exactly as jupyter-server's stock
``AsyncLargeFileManager`` does, for the same scenario run against both.

Two real servers run side by side, one stock, one in sync mode against moto; every
request goes to both and the replies must match (status, JSON body), with only
timestamps and the workspace's own path normalised.
"""

import base64
import json
import tempfile
from pathlib import Path

import pytest

from codepilot_contracts import defaults, layout

from .support.jupyterserver import STOCK_MANAGER, start_jupyter_server
from .support.s3server import start_s3_server

pytestmark = pytest.mark.integration

BUCKET = "parity"

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "id": "cell-1",
            "metadata": {},
            "source": "1 + 1",
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def text_model(text: str) -> dict:
    return {"type": "file", "format": "text", "content": text}


# (method, path, query, body): the whole life of a workspace through the contents API,
# errors included.
SCENARIO = [
    ("GET", "", {}, None),
    ("PUT", "a.txt", {}, text_model("hello\n")),
    ("GET", "a.txt", {}, None),
    ("GET", "a.txt", {"content": "0"}, None),
    ("GET", "a.txt", {"format": "base64"}, None),
    ("GET", "a.txt", {"type": "directory"}, None),
    ("GET", "a.txt", {"hash": "1"}, None),
    ("PUT", "a.txt", {}, text_model("changed\n")),
    (
        "PUT",
        "b.bin",
        {},
        {
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(bytes(range(256))).decode(),
        },
    ),
    ("GET", "b.bin", {}, None),
    ("GET", "b.bin", {"format": "text"}, None),
    ("PUT", "nb.ipynb", {}, {"type": "notebook", "content": NOTEBOOK}),
    ("GET", "nb.ipynb", {}, None),
    ("PUT", "bad.txt", {}, {"type": "file", "format": "bogus", "content": "x"}),
    ("PUT", "notype.txt", {}, {"content": "x"}),
    ("PUT", "nocontent.txt", {}, {"type": "file"}),
    ("PUT", "weird.txt", {}, {"type": "symlink", "content": "x"}),
    ("POST", "", {}, {"type": "file", "ext": ".py"}),
    ("POST", "", {}, {"type": "file", "ext": ".py"}),
    ("POST", "", {}, {"type": "directory"}),
    ("POST", "", {}, {"type": "notebook"}),
    ("POST", "", {}, {"copy_from": "a.txt"}),
    ("POST", "", {}, {"copy_from": "missing.txt"}),
    ("PATCH", "a.txt", {}, {"path": "renamed.txt"}),
    ("PATCH", "renamed.txt", {}, {"path": "b.bin"}),
    ("PATCH", "missing.txt", {}, {"path": "other.txt"}),
    ("PUT", "dir", {}, {"type": "directory"}),
    ("PUT", "dir/inner.txt", {}, text_model("inner")),
    ("PUT", "dir/sub", {}, {"type": "directory"}),
    ("GET", "dir", {}, None),
    ("POST", "", {}, {"copy_from": "dir"}),
    ("PATCH", "dir", {}, {"path": "dir2"}),
    ("GET", "dir2/inner.txt", {}, None),
    ("GET", "dir", {}, None),
    ("PUT", "chunked.txt", {}, {**text_model("one "), "chunk": 1}),
    ("PUT", "chunked.txt", {}, {**text_model("two "), "chunk": 2}),
    ("PUT", "chunked.txt", {}, {**text_model("three"), "chunk": -1}),
    ("GET", "chunked.txt", {}, None),
    ("PUT", "nbchunk.ipynb", {}, {"type": "notebook", "content": NOTEBOOK, "chunk": 1}),
    ("GET", ".hidden", {}, None),
    ("PUT", ".hidden", {}, text_model("x")),
    # Percent-encoded: HTTP clients resolve a literal "../" before sending it.
    ("GET", "..%2Fescape.txt", {}, None),
    ("PUT", "..%2Fescape.txt", {}, text_model("x")),
    ("PUT", "dir%2F..%2F..%2Fescape.txt", {}, text_model("x")),
    ("PUT", "nodir/x.txt", {}, text_model("x")),
    ("GET", "missing.txt", {}, None),
    ("POST", "nb.ipynb/checkpoints", {}, None),
    ("GET", "nb.ipynb/checkpoints", {}, None),
    ("PUT", "nb.ipynb", {}, {"type": "notebook", "content": {**NOTEBOOK, "cells": []}}),
    ("POST", "nb.ipynb/checkpoints/checkpoint", {}, None),
    ("GET", "nb.ipynb", {}, None),
    ("DELETE", "renamed.txt", {}, None),
    ("DELETE", "missing.txt", {}, None),
    ("DELETE", "dir2", {}, None),
    ("DELETE", "nb.ipynb/checkpoints/checkpoint", {}, None),
    ("GET", "", {}, None),
]


@pytest.fixture(scope="module")
def servers():
    s3 = start_s3_server(relay=False)
    s3.create_bucket(BUCKET)
    stock = start_jupyter_server(
        Path(tempfile.mkdtemp(prefix="codepilot-stock-")),
        {"CODEPILOT_STORAGE": "local"},
        args=(f"--ServerApp.contents_manager_class={STOCK_MANAGER}",),
    )
    synced = start_jupyter_server(
        Path(tempfile.mkdtemp(prefix="codepilot-parity-")),
        {**s3.env, "CODEPILOT_S3_BUCKET": BUCKET, "CODEPILOT_WORKSPACE_USER": "pat"},
    )
    yield stock, synced, s3
    stock.stop()
    synced.stop()
    s3.stop()


def normalise(value, root: Path):
    if isinstance(value, dict):
        return {
            key: "<time>" if key in ("last_modified", "created") else normalise(item, root)
            for key, item in value.items()
        }
    if isinstance(value, list):
        items = [normalise(item, root) for item in value]
        if all(isinstance(item, dict) and "path" in item for item in items):
            items.sort(key=lambda item: item["path"])
        return items
    if isinstance(value, str):
        return value.replace(str(root), "<root>")
    return value


def reply(server, method, path, query, body):
    response = server.contents(
        method, path, params=query, data=None if body is None else json.dumps(body)
    )
    try:
        payload = response.json()
    except ValueError:
        payload = "<html page>"  # carries the token and asset hashes: not comparable
    return response.status_code, normalise(payload, server.root)


def test_the_same_scenario_gets_the_same_replies(servers):
    stock, synced, s3 = servers
    assert synced.sync_status()["storage"] == "sync"
    for step in SCENARIO:
        expected = reply(stock, *step)
        got = reply(synced, *step)
        assert got == expected, f"{step[0]} {step[1]}: stock {expected} != sync {got}"
    # And the sync server's S3 copy holds what its disk holds.
    # The server was given no prefix: its workspace is under the shared default one.
    workspace = layout.workspace_prefix(defaults.S3_PREFIX, "pat")
    keys = {layout.relpath_for(workspace, key) for key in s3.keys(BUCKET, workspace)}
    files = {
        path.relative_to(synced.root).as_posix()
        for path in synced.root.rglob("*")
        if path.is_file()
        and ".ipynb_checkpoints" not in path.parts
        and ".codepilot" not in path.parts
    }
    assert files <= keys, files - keys
