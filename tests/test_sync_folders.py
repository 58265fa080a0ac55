"""Folders in S3: a folder exists by what lies below it, an empty one by its marker.

The engine writes ``<folder>/.s3keep`` only for a folder that holds nothing S3 stores
(s3contents' layout), so a tree of 300 folders costs 300 PUTs less on push and 300 keys
less in every restore's listing; a folder that its last file or subfolder leaves gets
its marker then. Against moto's real S3 API.
"""

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store

from .support.s3server import s3_server_fixture
from .support.sync_cli import run_sync

BUCKET = "folders"

s3 = s3_server_fixture(buckets=(BUCKET,))
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("s3_env")]


def workspace(name: str) -> tuple[Path, str]:
    return Path(tempfile.mkdtemp(prefix=f"codepilot-{name}-")), f"cp/users/{name}/default/"


def lay_out(root: Path, files: dict[str, str], folders: tuple[str, ...] = ()) -> None:
    """Make ``files`` (relpath -> text) and the empty ``folders`` below ``root``."""
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    for folder in folders:
        (root / folder).mkdir(parents=True)


@contextlib.asynccontextmanager
async def synced_workspace(s3, name: str, files: dict[str, str], folders: tuple[str, ...] = ()):
    """A new workspace laid out with ``files`` and ``folders``, and its sync on moto."""
    root, prefix = workspace(name)
    lay_out(root, files, folders)
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        yield WorkspaceSync(root, store, prefix)


def relative_keys(s3, prefix: str) -> set[str]:
    return {key[len(prefix) :] for key in s3.keys(BUCKET, prefix)}


async def until_idle(sync: WorkspaceSync) -> None:
    """The retry worker has pushed everything scheduled (within 20 s)."""
    deadline = time.monotonic() + 20
    while sync.pending or sync.status.state != "idle":
        assert time.monotonic() < deadline, f"sync not idle: {sync.status_model()}"
        await asyncio.sleep(0.05)


async def test_only_folders_holding_nothing_stored_get_a_marker(s3):
    files = {"src/pkg/main.py": "print(1)\n", "bytecode/cached.pyc": ""}
    async with synced_workspace(s3, "tree", files, ("empty", "links")) as sync:
        (sync.root / "links/to-main").symlink_to(sync.root / "src/pkg/main.py")
        assert await sync.push_tree("") == {}
        await sync.flush(10)
    # src and src/pkg exist by main.py; the others hold nothing S3 stores.
    assert relative_keys(s3, sync.key_prefix) == {
        "src/pkg/main.py",
        "empty/.s3keep",
        "links/.s3keep",
        "bytecode/.s3keep",
    }


async def test_a_folder_its_last_file_or_subfolder_leaves_keeps_existing(s3):
    files = {"notes/todo.txt": "-\n", "app/views/index.html": "<p/>\n", "lib/vendor/pkg/a.js": ""}
    async with synced_workspace(s3, "emptied", files) as sync:
        root, prefix = sync.root, sync.key_prefix
        sync.start()
        await until_idle(sync)
        assert relative_keys(s3, prefix) == set(files)

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
    files = {"lib/deep/er/mod.js": "export {}\n"}
    async with synced_workspace(s3, "roundtrip", files, ("lib/blank",)) as sync:
        store, prefix = sync.store, sync.key_prefix
        await sync.push_tree("")
        await sync.flush(10)
        before = relative_keys(s3, prefix)
        assert before == {"lib/deep/er/mod.js", "lib/blank/.s3keep"}

        target = Path(tempfile.mkdtemp(prefix="codepilot-restored-"))
        result = await restore_workspace(store, replace(store.location, key_prefix=prefix), target)
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


async def test_a_stop_gives_a_folder_emptied_while_no_server_watched_its_marker(s3):
    async with synced_workspace(
        s3, "offline", {"docs/old.md": "# old\n", "docs/keep/it.md": "# it\n"}
    ) as sync:
        root, prefix = sync.root, sync.key_prefix
        await sync.push_tree("")
        os.unlink(root / "docs/old.md")
        shutil.rmtree(root / "docs/keep")
        # The flush at stop finds both gone, and docs empty once they are deleted.
        assert await sync.flush(10) == []
    assert relative_keys(s3, prefix) == {"docs/.s3keep"}


def test_sync_push_from_a_shell_gives_an_emptied_folder_its_marker(s3):
    """No server runs, so nothing is scheduled for later: the push itself must do it."""
    root, prefix = workspace("shell")
    env = {
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": "cp",
        "CODEPILOT_WORKSPACE_USER": "shell",
    }
    lay_out(root, {"data/raw/a.csv": "a,b\n"})
    run_sync("push", "--root", str(root), env=env)
    assert relative_keys(s3, prefix) == {"data/raw/a.csv"}
    os.unlink(root / "data/raw/a.csv")
    run_sync("push", "--root", str(root), env=env)
    assert relative_keys(s3, prefix) == {"data/raw/.s3keep"}
