"""The sync and the dependency snapshots of a running workspace, sequenced files first by
``WorkspaceKeeper``: at stop the files go up, then the snapshots with the time that is
left; files left unpushed mean no snapshot. Against moto's real S3 API."""

import json
import logging
import tempfile
from pathlib import Path

import pytest

from codepilot_contracts import layout
from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.keeper import WorkspaceKeeper, dependency_snapshots
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store
from server_extension.storage.snapshots import index_relpath

from .support.s3server import s3_server_fixture

BUCKET = "keepers"
s3 = s3_server_fixture(buckets=(BUCKET,))
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("s3_env")]


def node_project(name: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"codepilot-{name}-"))
    (root / "package-lock.json").write_text('{"lockfileVersion": 3}')
    (root / "index.js").write_text("require('tool')\n")
    (root / "node_modules" / "tool").mkdir(parents=True)
    (root / "node_modules" / "tool" / "index.js").write_text("module.exports = 1\n")
    return root


def location_of(prefix: str, s3) -> WorkspaceLocation:
    return WorkspaceLocation(BUCKET, key_prefix=prefix, endpoint_url=s3.endpoint_url)


def keeper_for(store: S3Store, root: Path, prefix: str) -> WorkspaceKeeper:
    sync = WorkspaceSync(root, store, prefix)
    return WorkspaceKeeper(sync, dependency_snapshots(sync, check_interval=60))


async def test_a_stop_saves_the_files_then_a_snapshot_that_restores(s3):
    root, prefix = node_project("keeper-ada"), layout.workspace_prefix("", "keeper-ada")
    async with S3Store(location_of(prefix, s3)) as store:
        keeper = keeper_for(store, root, prefix)
        keeper.start()
        (root / "late.txt").write_text("written just before the stop")
        assert await keeper.stop(10) == []
        assert keeper.sync.status_model()["state"] == "stopped"
    index = json.loads(s3.read(BUCKET, prefix + index_relpath("node_modules")))
    assert list(index["locks"]) == ["package-lock.json"]
    assert s3.read(BUCKET, prefix + "late.txt") == b"written just before the stop"

    fresh = Path(tempfile.mkdtemp(prefix="codepilot-keeper-restored-"))
    async with S3Store(location_of(prefix, s3)) as store:
        result = await restore_workspace(store, location_of(prefix, s3), fresh)
    assert result.snapshots == {"node_modules": "restored"}, result.summary()
    assert (fresh / "node_modules/tool/index.js").read_text() == "module.exports = 1\n"


async def test_a_name_no_s3_key_can_hold_does_not_hold_the_snapshot_back(s3):
    """Such a file stays on disk for good (the sync says so); the snapshot still goes."""
    root, prefix = node_project("keeper-di"), layout.workspace_prefix("", "keeper-di")
    deep = root.joinpath(*["d" * 200] * 5)
    deep.mkdir(parents=True)
    (deep / "notes.txt").write_text("kept on this disk only")
    async with S3Store(location_of(prefix, s3)) as store:
        keeper = keeper_for(store, root, prefix)
        keeper.start()
        left = await keeper.stop(10)
        assert left and all(path in keeper.sync.status.unstorable for path in left)
    index = json.loads(s3.read(BUCKET, prefix + index_relpath("node_modules")))
    assert list(index["locks"]) == ["package-lock.json"]


async def test_files_left_unpushed_mean_no_snapshot_and_a_closed_sync(s3, caplog):
    root, prefix = node_project("keeper-bo"), layout.workspace_prefix("", "keeper-bo")
    async with S3Store(location_of(prefix, s3), connect_timeout=1, read_timeout=1) as store:
        keeper = keeper_for(store, root, prefix)
        with s3.outage(), caplog.at_level(logging.INFO):
            left = await keeper.stop(2)
        assert "package-lock.json" in left
        assert keeper.sync.status_model()["state"] == "stopped"
    assert not any("snapshot" in record.getMessage() for record in caplog.records)
    assert s3.keys(BUCKET, prefix) == set()


async def test_the_snapshots_get_only_the_time_the_files_left(s3):
    """No time left once the files are in S3: the snapshot waits for the next server."""
    root, prefix = node_project("keeper-cy"), layout.workspace_prefix("", "keeper-cy")
    async with S3Store(location_of(prefix, s3)) as store:
        sync = WorkspaceSync(root, store, prefix)
        assert await sync.push_tree("") == {}
        keeper = WorkspaceKeeper(sync, dependency_snapshots(sync))
        assert await keeper.stop(0) == []
        assert s3.keys(BUCKET, prefix + ".codepilot/") == set()
        # With time to spare, the same stop takes it.
        again = WorkspaceSync(root, store, prefix)
        assert await WorkspaceKeeper(again, dependency_snapshots(again)).stop(10) == []
    assert prefix + index_relpath("node_modules") in s3.keys(BUCKET, prefix)
