"""Every file name Linux allows round-trips through S3: pushed by the engine, restored by
the sync command with the same bytes, against moto's real S3 API.

A name a key cannot hold as it is (invalid UTF-8, a backslash, control characters) is
stored escaped (``codepilot_contracts.layout``); a key no name of ours maps to is
reported and skipped by a restore, which then still succeeds and deletes nothing.
"""

import asyncio
import contextlib
import mmap
import os
import tempfile
import time
from pathlib import Path

import pytest

from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.s3 import S3Store
from server_extension.storage.watcher import watch_workspace

from .support.s3server import s3_server_fixture
from .support.sync_cli import json_lines, run_sync

BUCKET = "names"
PREFIX = "cp"

s3 = s3_server_fixture(buckets=(BUCKET,))
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("s3_env")]

# Names as bytes: what a terminal, unzip or a student's open() can make.
ODD = (
    b"caf\xe9.txt",
    b"data\\results.csv",
    b"line\nbreak\rand\ttab",
    b"%%looks-escaped",
    b"50%.txt",
    b"\xe9" * 255,
    bytes(range(1, 47)) + bytes(range(48, 256)),
)


# An empty folder of odd names: stored as its marker, below escaped segments.
EMPTY = b"dir\xff\\/empty\n\xe9"


def workspace(user: str) -> tuple[Path, str]:
    return Path(tempfile.mkdtemp(prefix=f"codepilot-{user}-")), f"{PREFIX}/users/{user}/default/"


def lay_out(root: Path) -> dict[bytes, bytes]:
    """Every odd name as a file at the top and inside a folder of an odd name."""
    files = {}
    os.mkdir(os.path.join(os.fsencode(root), b"dir\xff\\"))
    os.makedirs(os.path.join(os.fsencode(root), EMPTY))
    for number, name in enumerate(ODD):
        for relative in (name, b"dir\xff\\/" + name):
            files[relative] = b"content %d of " % number + relative
            write_bytes(root, relative, files[relative])
    return files


def write_bytes(root: Path, relative: bytes, content: bytes) -> None:
    with open(os.path.join(os.fsencode(root), relative), "wb") as file:
        file.write(content)


def on_disk(root: Path) -> dict[bytes, bytes]:
    """Relative path -> bytes of every regular file below ``root`` (as bytes, .codepilot
    left out)."""
    found = {}
    top = os.fsencode(root)
    for folder, dirs, names in os.walk(top):
        dirs[:] = [name for name in dirs if name != b".codepilot"]
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, top)] = file.read()
    return found


def restore(s3, user: str, root: Path, check: bool = True):
    env = {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": PREFIX,
        "JUPYTERHUB_USER": user,
    }
    return run_sync(
        "restore", "--root", str(root), "--progress", "json", "--no-snapshots", env=env, check=check
    )


async def test_odd_names_are_pushed_and_restored_with_the_same_bytes(s3):
    root, prefix = workspace("odd")
    files = lay_out(root)
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        sync = WorkspaceSync(root, store, prefix)
        assert await sync.push_tree("") == {}
        assert await sync.flush(20) == []
    keys = s3.keys(BUCKET, prefix)
    assert len(keys) == len(files) + 1
    assert f"{prefix}%%dir%FF%5C/%%empty%0A%E9/.s3keep" in keys
    assert all("\\" not in key and "\n" not in key for key in keys)

    fresh = Path(tempfile.mkdtemp(prefix="codepilot-odd-restored-"))
    result = restore(s3, "odd", fresh)
    assert json_lines(result.stdout)[-1]["failed"] == {}
    assert on_disk(fresh) == files
    assert await asyncio.to_thread(os.path.isdir, os.path.join(os.fsencode(fresh), EMPTY))

    # Restored in place: nothing to do, nothing removed.
    done = json_lines(restore(s3, "odd", root).stdout)[-1]
    assert (done["downloaded"], done["removed"], done["failed"]) == (0, 0, {})
    assert on_disk(root) == files


async def test_a_key_no_name_maps_to_is_skipped_and_deletes_nothing(s3):
    root, prefix = workspace("foreign")
    (root / "keep.txt").write_text("mine")
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        sync = WorkspaceSync(root, store, prefix)
        await sync.push_tree("")
        await sync.flush(10)
    # Another tool (or an older version) wrote a raw backslash key.
    s3.client(direct=True).put_object(Bucket=BUCKET, Key=prefix + "win\\path.txt", Body=b"x")
    (root / "win\\path.txt").write_text("local copy")

    result = restore(s3, "foreign", root)  # exits 0
    done = json_lines(result.stdout)[-1]
    assert done["failed"] == {}
    assert list(done["skipped"]) == [prefix + "win\\path.txt"]
    assert "not restored" in result.stderr
    assert (root / "win\\path.txt").read_text() == "local copy"
    assert (root / "keep.txt").read_text() == "mine"


async def test_a_name_no_key_can_hold_does_not_stop_the_others(s3):
    root, prefix = workspace("long")
    name = os.fsdecode(b"\xe9" * 255)
    (root / name).mkdir()
    (root / name / name).write_text("too deep for a 1024-byte key")
    for number in range(20):
        (root / f"f{number}.txt").write_text(str(number))
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        sync = WorkspaceSync(root, store, prefix)
        left = await sync.flush(20)
    assert left == [f"{name}/{name}"]
    assert {f"{prefix}f{number}.txt" for number in range(20)} <= s3.keys(BUCKET, prefix)
    assert "1024" in sync.status.last_error["message"]
    assert sync.status_model()["unstorable"] == [f"{name}/{name}"]


@contextlib.asynccontextmanager
async def watched(s3, root: Path, prefix: str, **watch_options):
    """The workspace's sync with its watcher running, as a server has them; flushed at
    the end."""
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        sync = WorkspaceSync(root, store, prefix)
        sync.start()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_workspace(sync, stop, **watch_options))
        try:
            yield sync
        finally:
            stop.set()
            await watcher
            await sync.flush(10)


async def eventually(condition, sync: WorkspaceSync, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, sync.status_model()
        await asyncio.sleep(0.1)


async def test_a_name_watchfiles_cannot_decode_degrades_the_watcher_to_rescans(s3):
    root, prefix = workspace("rescan")
    os.mkdir(os.path.join(os.fsencode(root), b"unzipped-\xe9"))
    async with watched(s3, root, prefix, rescan_seconds=0.2) as sync:
        write_bytes(root, b"unzipped-\xe9/\xe9t\xe9", b"written from a terminal")
        (root / "later.txt").write_text("still mirrored")
        await eventually(lambda: len(s3.keys(BUCKET, prefix)) >= 2, sync)
        assert "decode" in sync.status_model()["watcher_degraded"]
        assert sync.status_model()["watcher_error"] is None
    assert s3.read(BUCKET, prefix + "%%unzipped-%E9/%%%E9t%E9") == b"written from a terminal"


def test_odd_names_come_from_the_small_files_pack(s3):
    root, _ = workspace("packed")
    files = {b"f\xe9\n\\%d" % number: b"small %d" % number for number in range(40)}
    for name, content in files.items():
        write_bytes(root, name, content)
    env = {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": PREFIX,
        "JUPYTERHUB_USER": "packed",
    }
    run_sync("push", "--root", str(root), env=env)
    run_sync("pack", "--root", str(root), env=env)
    fresh = Path(tempfile.mkdtemp(prefix="codepilot-packed-restored-"))
    done = json_lines(restore(s3, "packed", fresh).stdout)[-1]
    assert done["from_pack"] == len(files)
    assert on_disk(fresh) == files


async def test_a_name_no_key_can_hold_leaves_the_sync_idle_after_a_start(s3):
    root, prefix = workspace("idle")
    deep = os.fsdecode(b"\xe9" * 255)
    (root / deep).mkdir()
    (root / deep / deep).write_text("local only")
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        sync = WorkspaceSync(root, store, prefix)
        sync.start()  # reconciles: pushes what changed while no server ran
        try:
            deadline = time.monotonic() + 20
            while sync.status_model()["state"] != "idle":
                assert time.monotonic() < deadline, sync.status_model()
                await asyncio.sleep(0.05)
            assert sync.status_model()["unstorable"] == [f"{deep}/{deep}"]
        finally:
            await sync.flush(10)


def write_unannounced(root) -> None:
    with open(root / "data.bin", "r+b") as f, mmap.mmap(f.fileno(), 4096) as mapped:
        mapped[:6] = b"mapped"  # no inotify event at all
        mapped.flush()
    with open(root / "linked.txt", "r+") as f:  # an event for linked.txt, none for notes.txt
        f.write("again")


async def test_writes_no_event_announces_are_swept_up(s3):
    """Through a memory map, and through another name of a hard-linked file."""
    root, prefix = workspace("swept")
    (root / "data.bin").write_bytes(b"\0" * 4096)
    (root / "notes.txt").write_text("first")
    async with watched(s3, root, prefix, sweep_seconds=0.5) as sync:
        synced = {prefix + "data.bin", prefix + "notes.txt"}
        await eventually(lambda: synced <= s3.keys(BUCKET, prefix), sync)
        os.link(root / "notes.txt", root / "linked.txt")
        await eventually(lambda: prefix + "linked.txt" in s3.keys(BUCKET, prefix), sync)
        await asyncio.to_thread(write_unannounced, root)
        await eventually(
            lambda: (
                s3.read(BUCKET, prefix + "data.bin")[:6] == b"mapped"
                and s3.read(BUCKET, prefix + "notes.txt") == b"again"
            ),
            sync,
        )
