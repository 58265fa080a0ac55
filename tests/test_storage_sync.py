"""sync mode against a real S3 API: every acknowledged change is in S3 with the shared keys.

One moto server (behind a relay that can simulate an outage) and one user server in
sync mode are shared by the tests of this module; each test works in a folder of its
own. The server is a plain ``jupyter server`` with Code Pilot's extension and token
auth, which is what a spawned user server runs minus the hub.
"""

import base64
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import pytest
import requests

from .support.hubtools import wait_until
from .support.jupyterserver import synced_server_fixture
from .support.s3server import s3_server_fixture
from .support.terminals import run_in_terminal

pytestmark = pytest.mark.integration

BUCKET = "workspaces"
PREFIX = "cp"
USER = "alice"
KEYS = f"{PREFIX}/users/{USER}/default/"


s3 = s3_server_fixture(buckets=(BUCKET,))


server = synced_server_fixture(BUCKET, PREFIX, USER)


@pytest.fixture(scope="module")
def terminal(server):
    with server.open_terminal() as ws:
        run_in_terminal(ws, f"cd {server.root} && echo READY", "READY")
        yield ws


def s3_object(s3, relpath: str) -> bytes | None:
    return s3.read(BUCKET, KEYS + relpath)


def test_text_binary_and_notebook_round_trip(server, s3):
    assert server.contents("PUT", "rt", json={"type": "directory"}).status_code == 201
    text = "print('héllo')\n"
    assert server.put_text("rt/app.py", text).status_code == 201
    binary = bytes(range(256)) * 40
    model = {"type": "file", "format": "base64", "content": base64.b64encode(binary).decode()}
    assert server.contents("PUT", "rt/data.bin", json=model).status_code == 201
    notebook = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Title"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    response = server.contents("PUT", "rt/nb.ipynb", json={"type": "notebook", "content": notebook})
    assert response.status_code == 201, response.text

    # Acknowledged means in S3: no waiting here.
    assert s3_object(s3, "rt/app.py") == text.encode()
    assert s3_object(s3, "rt/data.bin") == binary
    assert s3_object(s3, "rt/nb.ipynb") == (server.root / "rt" / "nb.ipynb").read_bytes()
    assert s3_object(s3, "rt/.s3keep") == b""
    assert "".join(json.loads(s3_object(s3, "rt/nb.ipynb"))["cells"][0]["source"]) == "# Title"

    assert server.contents("GET", "rt/app.py").json()["content"] == text
    got = server.contents("GET", "rt/data.bin", params={"format": "base64"}).json()
    assert base64.b64decode(got["content"]) == binary
    got = server.contents("GET", "rt/nb.ipynb").json()["content"]
    assert got["cells"][0]["source"] == "# Title"


def test_chunked_upload_of_100_mb(server, s3):
    chunk_size = 4 * 1024 * 1024
    total = 100 * 1024 * 1024
    digest = hashlib.md5()
    seed = os.urandom(chunk_size)
    chunks = total // chunk_size
    for number in range(1, chunks + 1):
        data = seed[number:] + seed[:number]  # every chunk differs
        digest.update(data)
        model = {
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(data).decode(),
            "chunk": -1 if number == chunks else number,
        }
        response = server.contents("PUT", "big.bin", json=model)
        assert response.status_code in (200, 201), response.text
    assert response.json()["size"] == total
    head = s3.client(direct=True).head_object(Bucket=BUCKET, Key=KEYS + "big.bin")
    assert head["ContentLength"] == total
    assert "-" in head["ETag"]  # went up in multipart
    body = s3.client(direct=True).get_object(Bucket=BUCKET, Key=KEYS + "big.bin")["Body"]
    remote = hashlib.md5()
    for block in iter(lambda: body.read(8 * 1024 * 1024), b""):
        remote.update(block)
    assert remote.hexdigest() == digest.hexdigest()
    assert server.contents("DELETE", "big.bin").status_code == 204
    assert s3_object(s3, "big.bin") is None


def test_new_folder_rename_copy_and_delete(server, s3):
    response = server.contents("POST", "", json={"type": "directory"})
    assert response.status_code == 201
    untitled = response.json()["path"]
    assert s3_object(s3, f"{untitled}/.s3keep") == b""

    assert server.contents("PATCH", untitled, json={"path": "proj"}).status_code == 200
    assert server.put_text("proj/a.txt", "a").status_code == 201
    assert server.contents("PUT", "proj/sub", json={"type": "directory"}).status_code == 201
    assert server.put_text("proj/sub/b.txt", "b").status_code == 201
    assert s3.keys(BUCKET, KEYS + "proj/") == {
        KEYS + "proj/.s3keep",
        KEYS + "proj/a.txt",
        KEYS + "proj/sub/.s3keep",
        KEYS + "proj/sub/b.txt",
    }
    assert s3.keys(BUCKET, KEYS + untitled + "/") == set()

    response = server.contents("POST", "", json={"copy_from": "proj/a.txt"})
    assert response.status_code == 201, response.text
    assert s3_object(s3, response.json()["path"]) == b"a"
    response = server.contents("POST", "", json={"copy_from": "proj"})
    assert response.status_code == 201, response.text
    copied = response.json()["path"]
    assert s3_object(s3, f"{copied}/sub/b.txt") == b"b"

    assert server.contents("PATCH", "proj", json={"path": "renamed"}).status_code == 200
    assert s3.keys(BUCKET, KEYS + "proj/") == set()
    assert s3_object(s3, "renamed/sub/b.txt") == b"b"
    assert s3_object(s3, "renamed/a.txt") == b"a"

    assert server.contents("DELETE", "renamed").status_code == 204
    assert s3.keys(BUCKET, KEYS + "renamed/") == set()
    assert not (server.root / "renamed").exists()


def test_terminal_made_files_are_mirrored_and_ignored_paths_are_not(server, s3, terminal):
    run_in_terminal(terminal, "mkdir -p term && cd term && echo x > new.txt && echo OK1", "OK1")
    started = time.monotonic()
    wait_until(lambda: s3_object(s3, "term/new.txt") == b"x\n", 10, 0.05, "new.txt in S3")
    first_seen = time.monotonic() - started

    # Emptied, the folder keeps existing in S3: by its marker now.
    run_in_terminal(terminal, "rm new.txt && echo OK2", "OK2")
    wait_until(lambda: s3_object(s3, "term/new.txt") is None, 10, 0.05, "new.txt gone")
    wait_until(lambda: s3_object(s3, "term/.s3keep") == b"", 10, 0.05, "the emptied folder")

    run_in_terminal(
        terminal,
        "printf '*.log\\n' > ../.codepilotignore && sleep 1 && mkdir -p node_modules/m .venv "
        "&& echo 1 > node_modules/m/i.js && echo 2 > .venv/cfg && echo 3 > x.pyc "
        "&& echo 4 > debug.log && echo 5 > after.txt && echo OK3",
        "OK3",
    )
    wait_until(lambda: s3_object(s3, "term/after.txt") == b"5\n", 10, 0.05, "after.txt")
    # after.txt came in the same or a later batch than the ignored files.
    time.sleep(0.5)
    keys = s3.keys(BUCKET, KEYS + "term/")
    assert keys == {KEYS + "term/.s3keep", KEYS + "term/after.txt"}, keys
    assert first_seen < 10


def test_status_endpoint_reports_the_mirror(server):
    status = server.sync_status()
    assert status["storage"] == "sync"
    assert status["location"] == f"s3://{BUCKET}/{KEYS}"
    assert status["pending"] == 0
    assert status["last_success"] is not None
    anonymous = requests.get(f"{server.url}/codepilot/api/sync", timeout=30)
    assert anonymous.status_code == 403


def test_outage_fails_saves_clearly_keeps_local_and_catches_up(server, s3, terminal):
    assert server.put_text("outage.txt", "before").status_code == 201
    before = server.sync_status()["last_success"]
    with s3.outage():
        response = server.put_text("outage.txt", "during")
        assert response.status_code == 503, response.text
        assert "S3" in response.json()["message"]
        assert "outage.txt" in response.json()["message"]
        assert (server.root / "outage.txt").read_text() == "during"
        run_in_terminal(terminal, f"echo made > {server.root}/offline.txt && echo OK4", "OK4")
        status = wait_until(
            lambda: (s := server.sync_status())["pending"] >= 2 and s, 10, 0.1, "pending"
        )
        assert status["last_error"] is not None and "S3" in status["last_error"]["message"]
        assert status["last_success"] == before
        assert s3_object(s3, "outage.txt") == b"before"  # read past the relay
        assert s3_object(s3, "offline.txt") is None
    wait_until(lambda: server.sync_status()["pending"] == 0, 30, 0.2, "the watcher to catch up")
    assert s3_object(s3, "outage.txt") == b"during"
    assert s3_object(s3, "offline.txt") == b"made\n"
    # The objects above prove the catch-up; timestamps have whole seconds, so the outage
    # may fit in the second of the last success before it.
    assert server.sync_status()["last_success"] >= before


def test_a_save_of_unchanged_text_sends_nothing_unless_s3_lacks_it(server, s3):
    assert server.put_text("same.py", "draft 1\n").status_code == 201
    written = os.stat(server.root / "same.py").st_mtime_ns
    with s3.recording() as seen:
        response = server.put_text("same.py", "draft 1\n")
        sent = [entry for entry in seen() if entry[1].startswith(s3.endpoint_url)]
    assert response.status_code == 200, response.text
    assert sent == []
    assert os.stat(server.root / "same.py").st_mtime_ns == written

    # The same text saved again while S3 still lacks it is not acknowledged either.
    with s3.outage():
        assert server.put_text("same.py", "draft 2\n").status_code == 503
        assert server.put_text("same.py", "draft 2\n").status_code == 503
        assert s3_object(s3, "same.py") == b"draft 1\n"
    wait_until(lambda: s3_object(s3, "same.py") == b"draft 2\n", 30, 0.2, "the catch-up")


@pytest.mark.parametrize(
    "path",
    [
        "../outside.txt",
        "..%2Foutside.txt",
        "%2e%2e/outside.txt",
        "sub/../../outside.txt",
    ],
)
def test_path_traversal_is_refused(server, path):
    outside = server.root.parent / "outside.txt"
    response = server.api(
        "PUT",
        f"/api/contents/{path}",
        data=json.dumps({"type": "file", "format": "text", "content": "escaped"}),
    )
    assert response.status_code in (400, 404), response.text
    assert not outside.exists() or outside.read_text() != "escaped"
    assert server.api("GET", f"/api/contents/{path}").status_code in (400, 404)


def test_absolute_paths_stay_inside(server):
    response = server.api("GET", "/api/contents//etc/hostname")
    assert response.status_code == 404
    response = server.api("GET", "/files//etc/hostname")
    assert response.status_code in (403, 404)


def test_symlinks_out_of_the_workspace_are_refused(server, s3):
    secret_dir = Path(tempfile.mkdtemp(prefix="codepilot-outside-"))
    (secret_dir / "secret.txt").write_text("secret")
    (server.root / "link.txt").symlink_to(secret_dir / "secret.txt")
    (server.root / "linkdir").symlink_to(secret_dir)
    for path in ("link.txt", "linkdir", "linkdir/secret.txt"):
        assert server.contents("GET", path).status_code == 404, path
    assert server.api("GET", "/files/link.txt").status_code in (403, 404)
    assert server.api("GET", "/files/linkdir/secret.txt").status_code in (403, 404)
    assert server.put_text("link.txt", "overwritten").status_code == 404
    assert server.put_text("linkdir/new.txt", "planted").status_code == 404
    assert server.contents("PATCH", "outage.txt", json={"path": "linkdir/x"}).status_code == 404
    assert (secret_dir / "secret.txt").read_text() == "secret"
    assert not (secret_dir / "new.txt").exists()
    # The listing still works and shows the links themselves.
    names = {item["name"] for item in server.contents("GET", "").json()["content"]}
    assert {"link.txt", "linkdir"} <= names
    time.sleep(1.5)  # give the watcher time to (not) upload anything
    assert s3_object(s3, "link.txt") is None
    assert s3.keys(BUCKET, KEYS + "linkdir") == set()
    assert server.contents("DELETE", "link.txt").status_code == 204
    assert (secret_dir / "secret.txt").read_text() == "secret"
