"""Folders in S3: a folder exists by what lies below it, an empty one by its marker.

The engine writes ``<folder>/.s3keep`` only for a folder that holds nothing S3 stores
(s3contents' layout), so a tree of 300 folders costs 300 PUTs less on push and 300 keys
less in every restore's listing; a folder that its last file or subfolder leaves gets
its marker then. Against moto's real S3 API.
"""

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store

from .s3server import s3_server_fixture

BUCKET = "folders"

s3 = s3_server_fixture(buckets=(BUCKET,))
pytestmark = pytest.mark.usefixtures("s3_env")


def workspace(name: str) -> tuple[Path, str]:
    return Path(tempfile.mkdtemp(prefix=f"codepilot-{name}-")), f"cp/users/{name}/default/"


def relative_keys(s3, prefix: str) -> set[str]:
    return {key[len(prefix) :] for key in s3.keys(BUCKET, prefix)}


async def until_idle(sync: WorkspaceSync) -> None:
    """The retry worker has pushed everything scheduled (within 20 s)."""
    deadline = time.monotonic() + 20
    while sync.pending or sync.status.state != "idle":
        assert time.monotonic() < deadline, f"sync not idle: {sync.status_model()}"
        await asyncio.sleep(0.05)


async def test_only_folders_holding_nothing_stored_get_a_marker(s3):
    root, prefix = workspace("tree")
    (root / "src/pkg").mkdir(parents=True)
    (root / "src/pkg/main.py").write_text("print(1)\n")
    (root / "empty").mkdir()
    (root / "links").mkdir()
    (root / "links/to-main").symlink_to(root / "src/pkg/main.py")
    (root / "bytecode").mkdir()
    (root / "bytecode/cached.pyc").write_bytes(b"\x00")
    async with S3Store(BUCKET, s3.endpoint_url) as store:
        sync = WorkspaceSync(root, store, prefix)
        assert await sync.push_tree("") == {}
        await sync.flush(10)
    # src and src/pkg exist by main.py; the others hold nothing S3 stores.
    assert relative_keys(s3, prefix) == {
        "src/pkg/main.py",
        "empty/.s3keep",
        "links/.s3keep",
        "bytecode/.s3keep",
    }


async def test_a_folder_its_last_file_or_subfolder_leaves_keeps_existing(s3):
    root, prefix = workspace("emptied")
    (root / "notes").mkdir()
    (root / "notes/todo.txt").write_text("todo\n")
    (root / "app/views").mkdir(parents=True)
    (root / "app/views/index.html").write_text("<p>hi</p>\n")
    (root / "lib/vendor/pkg").mkdir(parents=True)
    (root / "lib/vendor/pkg/pkg.js").write_text("export {}\n")
    async with S3Store(BUCKET, s3.endpoint_url) as store:
        sync = WorkspaceSync(root, store, prefix)
        sync.start()
        await until_idle(sync)
        files = {"notes/todo.txt", "app/views/index.html", "lib/vendor/pkg/pkg.js"}
        assert relative_keys(s3, prefix) == files

        os.unlink(root / "notes/todo.txt")
        await sync.push_path("notes/todo.txt")
        (root / "app/views").rename(root / "views")
        await sync.rename("app/views", "views")
        shutil.rmtree(root / "lib/vendor/pkg")  # lib/vendor held only pkg
        await sync.push_path("lib/vendor/pkg")
        await until_idle(sync)
        await sync.flush(10)
    assert relative_keys(s3, prefix) == {
        "notes/.s3keep",
        "app/.s3keep",
        "views/index.html",
        "lib/vendor/.s3keep",
    }
    # What the manifest says S3 holds is what S3 holds.
    assert set(sync.manifest.entries) == relative_keys(s3, prefix)


async def test_restore_brings_back_both_kinds_and_the_next_push_adds_nothing(s3):
    source, prefix = workspace("roundtrip")
    (source / "lib/deep/er").mkdir(parents=True)
    (source / "lib/deep/er/mod.js").write_text("export {}\n")
    (source / "lib/blank").mkdir()
    async with S3Store(BUCKET, s3.endpoint_url) as store:
        sync = WorkspaceSync(source, store, prefix)
        await sync.push_tree("")
        await sync.flush(10)
        before = relative_keys(s3, prefix)
        assert before == {"lib/deep/er/mod.js", "lib/blank/.s3keep"}

        target = Path(tempfile.mkdtemp(prefix="codepilot-restored-"))
        result = await restore_workspace(store, prefix, target)
        assert not result.failed, result.failed
        assert (target / "lib/deep/er/mod.js").read_text() == "export {}\n"
        assert (target / "lib/blank").is_dir()

        # The restored manifest knows every folder: the server's first push writes none.
        again = WorkspaceSync(target, store, prefix)
        assert all(again.manifest.has_folder(folder) for folder in ("lib", "lib/deep/er"))
        assert await again.push_tree("") == {}
        assert not again.manifest.dirty
        await again.flush(10)
    assert relative_keys(s3, prefix) == before
