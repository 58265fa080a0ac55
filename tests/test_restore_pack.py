"""The small-files pack against a real S3 API (moto): a restore takes what still matches
from one GET and fetches the rest one by one; per-file objects stay the truth."""

import asyncio
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import pytest

from codepilot_contracts import layout
from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.localtree import scan_local
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.pack import (
    FORMER_PACK_INDEX,
    PACK,
    PACK_INDEX,
    PackKeeper,
    packable,
    upload_pack,
)
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store

from .support.s3server import s3_server_fixture

BUCKET = "packs"
s3 = s3_server_fixture(buckets=(BUCKET,))
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("s3_env")]


def make_workspace(root: Path, count: int = 60) -> dict[str, bytes]:
    files = {f"src/m{n % 5}/f{n}.txt": os.urandom(100 + n * 37) for n in range(count)}
    files["big.bin"] = os.urandom(300 * 1024)  # above the small-file size: not packed
    for relpath, data in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    return files


async def push_and_pack(root: Path, keys: str) -> dict[str, str]:
    async with S3Store(WorkspaceLocation(BUCKET, key_prefix=keys)) as store:
        sync = WorkspaceSync(root, store, keys)
        assert not await sync.push_tree("")
        members = packable(sync.manifest, scan_local(sync.root, sync.rules).files)
        return await upload_pack(store, keys, sync.root, members)


async def restore(root: Path, keys: str):
    location = WorkspaceLocation(BUCKET, key_prefix=keys)
    async with S3Store(location) as store:
        return await restore_workspace(store, location, root)


def check_tree(root: Path, files: dict[str, bytes]) -> None:
    for relpath, data in files.items():
        assert (root / relpath).read_bytes() == data, relpath


def test_restore_takes_small_files_from_the_pack_and_the_rest_one_by_one(s3):
    keys = layout.workspace_prefix("", "pack-ann")
    source = Path(tempfile.mkdtemp())
    files = make_workspace(source)
    packed = asyncio.run(push_and_pack(source, keys))
    assert set(packed) == set(files) - {"big.bin"}

    # Changed in S3 after the pack (another server, s3contents): taken one by one.
    files["src/m1/f1.txt"] = b"changed after the pack"
    s3.client(direct=True).put_object(
        Bucket=BUCKET, Key=keys + "src/m1/f1.txt", Body=b"changed after the pack"
    )

    fresh = Path(tempfile.mkdtemp())
    result = asyncio.run(restore(fresh, keys))
    assert not result.failed
    assert result.from_pack == len(files) - 2  # all small files but the changed one
    assert result.downloaded == len(files)
    check_tree(fresh, files)

    # Nothing changed: nothing downloaded, the pack included.
    again = asyncio.run(restore(fresh, keys))
    assert again.downloaded == 0 and again.unchanged == len(files)


def test_a_tampered_pack_costs_requests_not_correctness(s3):
    keys = layout.workspace_prefix("", "pack-bo")
    source = Path(tempfile.mkdtemp())
    files = make_workspace(source)
    packed = asyncio.run(push_and_pack(source, keys))
    # A pack whose members lie about their bytes, plus one named outside the workspace.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for relpath in [*packed, "../../escape.txt"]:
            data = b"forged"
            info = tarfile.TarInfo(relpath)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    client = s3.client(direct=True)
    client.put_object(Bucket=BUCKET, Key=keys + PACK, Body=buffer.getvalue())
    index = json.loads(s3.read(BUCKET, keys + PACK_INDEX))
    index["files"]["../../escape.txt"] = "0" * 32
    client.put_object(Bucket=BUCKET, Key=keys + PACK_INDEX, Body=json.dumps(index).encode())

    parent = Path(tempfile.mkdtemp())
    fresh = parent / "a" / "b" / "ws"
    result = asyncio.run(restore(fresh, keys))
    assert not result.failed and result.from_pack == 0
    check_tree(fresh, files)
    assert not any(path.name == "escape.txt" for path in parent.rglob("*"))

    # A truncated pack: same, every file one by one.
    client.put_object(Bucket=BUCKET, Key=keys + PACK, Body=buffer.getvalue()[:700])
    fresh = Path(tempfile.mkdtemp())
    result = asyncio.run(restore(fresh, keys))
    assert not result.failed and result.from_pack == 0
    check_tree(fresh, files)


def test_pack_objects_stay_out_of_the_restored_workspace(s3):
    keys = layout.workspace_prefix("", "pack-cy")
    source = Path(tempfile.mkdtemp())
    files = make_workspace(source, count=20)
    asyncio.run(push_and_pack(source, keys))
    fresh = Path(tempfile.mkdtemp())
    asyncio.run(restore(fresh, keys))
    restored = {
        str(path.relative_to(fresh))
        for path in fresh.rglob("*")
        if path.is_file() and ".codepilot" not in path.parts
    }
    assert restored == set(files)


def test_a_pack_indexed_under_the_former_name_is_still_used_then_renamed(s3):
    """Earlier versions named the pack's index ``manifest.json``: a restore still reads it,
    and the next pack a server makes writes ``index.json`` and deletes the old one."""
    keys = layout.workspace_prefix("", "pack-dee")
    source = Path(tempfile.mkdtemp())
    files = make_workspace(source, count=30)
    asyncio.run(push_and_pack(source, keys))
    client = s3.client(direct=True)
    index = s3.read(BUCKET, keys + PACK_INDEX)
    client.put_object(Bucket=BUCKET, Key=keys + FORMER_PACK_INDEX, Body=index)
    client.delete_object(Bucket=BUCKET, Key=keys + PACK_INDEX)

    fresh = Path(tempfile.mkdtemp())
    result = asyncio.run(restore(fresh, keys))
    assert not result.failed and result.from_pack == len(files) - 1  # all but big.bin
    check_tree(fresh, files)

    async def refresh_after_an_edit() -> tuple[bool, bool]:
        (source / "src/m0/f0.txt").write_bytes(b"edited")
        async with S3Store(WorkspaceLocation(BUCKET, key_prefix=keys)) as store:
            sync = WorkspaceSync(source, store, keys)
            assert not await sync.push_tree("")
            keeper = PackKeeper(sync.root, store, keys, sync.manifest)
            # Read from the former index: one edit is not enough for a new pack...
            unchanged = await keeper.refresh(min_changes=2)
            return unchanged, await keeper.refresh(min_changes=1)

    assert asyncio.run(refresh_after_an_edit()) == (False, True)
    stored = s3.keys(BUCKET, keys + ".codepilot/pack/")
    assert stored == {keys + PACK, keys + PACK_INDEX}
    assert json.loads(s3.read(BUCKET, keys + PACK_INDEX))["files"]["src/m0/f0.txt"]
