"""The workspace root and folder paths in every spelling, in ``local`` and ``sync`` mode.

A model without content (``?content=0``) is how clients ask "does this folder exist";
the root, ``''``, ``'/'``, and folders with trailing or doubled slashes must answer it
as jupyter-server's stock manager does, while symlinks out of the workspace stay
refused. Real servers: one stock, one per Code Pilot mode, the sync one on moto.
"""

import json
import os
import tempfile
from pathlib import Path

import pytest

from server_extension.storage.localtree import has_symlink_component, holder_is_inside, is_inside

from .support.jupyterserver import STOCK_MANAGER, start_jupyter_server
from .support.s3server import s3_server_fixture

BUCKET = "paths"
USER = "root-paths"

s3 = s3_server_fixture(buckets=(BUCKET,))

# (URL path after /api/contents, the API path the model carries, the folder it lists)
FOLDER_SPELLINGS = [
    ("", "", ""),
    ("/", "", ""),
    ("//", "", ""),
    ("/sub", "sub", "sub"),
    ("/sub/", "sub", "sub"),
    ("/sub//", "sub", "sub"),
    ("/sub/inner", "sub/inner", "sub/inner"),
    ("/sub/inner/", "sub/inner", "sub/inner"),
    ("/sub/./inner", "sub/inner", "sub/inner"),
    # Percent-encoded, so that the client sends it: the root by another name.
    ("/sub%2F..", "sub/..", ""),
]
LISTINGS = {"": ["sub", "top.txt"], "sub": ["inner"], "sub/inner": ["a.txt"]}


def make_tree(root: Path) -> None:
    (root / "sub" / "inner").mkdir(parents=True)
    (root / "sub" / "inner" / "a.txt").write_text("a")
    (root / "top.txt").write_text("top")


@pytest.fixture(scope="module")
def stock():
    root = Path(tempfile.mkdtemp(prefix="codepilot-paths-stock-"))
    make_tree(root)
    server = start_jupyter_server(
        root,
        {"CODEPILOT_STORAGE": "local"},
        args=(f"--ServerApp.contents_manager_class={STOCK_MANAGER}",),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["local", "sync"])
def server(request, s3):
    root = Path(tempfile.mkdtemp(prefix=f"codepilot-paths-{request.param}-"))
    make_tree(root)
    env = {"CODEPILOT_STORAGE": request.param}
    if request.param == "sync":
        env |= {**s3.env, "CODEPILOT_S3_BUCKET": BUCKET, "CODEPILOT_WORKSPACE_USER": USER}
    running = start_jupyter_server(root, env)
    assert running.sync_status()["storage"] == request.param
    yield running
    running.stop()


def model_of(server, url_path: str, **params) -> tuple[int, dict]:
    response = server.api("GET", f"/api/contents{url_path}", params=params)
    body = response.json()
    for key in ("last_modified", "created"):
        body.pop(key, None)
    return response.status_code, body


@pytest.mark.integration
@pytest.mark.parametrize(("url_path", "api_path", "folder"), FOLDER_SPELLINGS)
def test_folder_model_without_content(server, stock, url_path, api_path, folder):
    status, model = model_of(server, url_path, content="0")
    assert status == 200, model
    assert model["type"] == "directory"
    assert model["path"] == api_path
    assert model["content"] is None
    assert (status, model) == model_of(stock, url_path, content="0")


@pytest.mark.integration
@pytest.mark.parametrize(("url_path", "api_path", "folder"), FOLDER_SPELLINGS)
def test_folder_model_with_content(server, stock, url_path, api_path, folder):
    status, model = model_of(server, url_path)
    assert status == 200, model
    assert model["path"] == api_path
    listing = sorted((item["name"], item["type"]) for item in model["content"])
    assert [name for name, _ in listing] == LISTINGS[folder]
    stock_status, stock_model = model_of(stock, url_path)
    assert status == stock_status
    assert listing == sorted((item["name"], item["type"]) for item in stock_model["content"])


@pytest.mark.integration
def test_hashed_root_model_answers_as_stock(server, stock):
    # hash=1 asks for the whole model, so the root itself is checked, not its parent.
    # (Stock answers 500 for any folder with hash=1: folders have no hash.)
    ours = server.api("GET", "/api/contents/", params={"hash": "1"})
    theirs = stock.api("GET", "/api/contents/", params={"hash": "1"})
    assert (ours.status_code, ours.text) == (theirs.status_code, theirs.text)
    assert "outside" not in ours.text


@pytest.mark.integration
def test_root_cannot_be_renamed_or_deleted(server):
    assert server.contents("DELETE", "").status_code == 400
    response = server.api("PATCH", "/api/contents/", data=json.dumps({"path": "moved"}))
    assert response.status_code == 400, response.text
    assert "root" in response.json()["message"]
    assert (server.root / "top.txt").read_text() == "top"
    assert not (server.root / "moved").exists()


@pytest.mark.integration
def test_root_without_content_is_saved_as_a_folder(server, stock):
    # A folder model PUT on the root: stock answers 201 with the root's model.
    body = json.dumps({"type": "directory"})
    ours = server.api("PUT", "/api/contents/", data=body)
    theirs = stock.api("PUT", "/api/contents/", data=body)
    assert ours.status_code == theirs.status_code, ours.text
    assert ours.ok, ours.text
    assert ours.json()["path"] == theirs.json()["path"] == ""


@pytest.mark.integration
def test_symlinks_stay_refused_without_content(server):
    outside = Path(tempfile.mkdtemp(prefix="codepilot-paths-outside-"))
    (outside / "secret.txt").write_text("secret")
    (outside / "folder").mkdir()
    (server.root / "linkdir").symlink_to(outside)
    try:
        # The link itself may be listed, nothing below it.
        assert server.contents("GET", "linkdir", params={"content": "0"}).status_code == 200
        for path in ("linkdir/secret.txt", "linkdir/folder", "linkdir/folder/"):
            response = server.contents("GET", path, params={"content": "0"})
            assert response.status_code == 404, (path, response.text)
            assert server.contents("GET", path).status_code == 404, path
    finally:
        (server.root / "linkdir").unlink()


@pytest.mark.integration
def test_a_folder_is_not_copied_into_a_symlinked_folder(server):
    outside = Path(tempfile.mkdtemp(prefix="codepilot-paths-outside-"))
    (server.root / "escape").symlink_to(outside)
    try:
        response = server.contents("POST", "escape", data=json.dumps({"copy_from": "sub"}))
        assert response.status_code == 404, response.text
        assert list(outside.iterdir()) == []
        response = server.contents("POST", "", data=json.dumps({"copy_from": "escape"}))
        assert response.status_code == 404, response.text
    finally:
        (server.root / "escape").unlink()


@pytest.mark.integration
def test_a_folder_with_a_symlink_out_is_not_copied(server):
    outside = Path(tempfile.mkdtemp(prefix="codepilot-paths-outside-"))
    (outside / "secret.txt").write_text("secret")
    folder = server.root / "leaky"
    folder.mkdir()
    (folder / "secret.txt").symlink_to(outside / "secret.txt")
    try:
        response = server.contents("POST", "", data=json.dumps({"copy_from": "leaky"}))
        assert response.status_code == 400, response.text
        assert "symlink" in response.json()["message"]
        copies = [path.name for path in server.root.iterdir() if path.name.startswith("leaky-")]
        assert copies == []
    finally:
        (folder / "secret.txt").unlink()
        folder.rmdir()


# --- the pure path checks behind those answers -----------------------------------------


def test_is_inside_from_the_filesystem_root():
    assert is_inside(Path("/"), Path("/etc/hostname"))
    assert is_inside(Path("/"), Path("/"))


def test_holder_of_the_root_is_the_root(tmp_path):
    assert holder_is_inside(tmp_path, tmp_path)
    assert holder_is_inside(tmp_path, Path(f"{tmp_path}/"))
    assert holder_is_inside(tmp_path, tmp_path / "a")
    assert not holder_is_inside(tmp_path / "a", tmp_path)
    assert not holder_is_inside(tmp_path, tmp_path.parent / "other")


def test_a_symlinked_workspace_root_is_not_a_symlink_component(tmp_path):
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    workspace = tmp_path / "workspace"
    workspace.symlink_to(real)
    assert not has_symlink_component(workspace, "")
    assert not has_symlink_component(workspace, "sub")
    os.symlink(real / "sub", real / "link")
    assert has_symlink_component(workspace, "link")
    assert holder_is_inside(workspace, workspace / "sub")
    assert is_inside(workspace, workspace)
