"""The pure parts of workspace storage: S3 keys, ignore rules, restore plans, wiring."""

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest
from tornado import web

from server_extension.starters import starter_dir, starter_names
from server_extension.storage import contents, wiring
from server_extension.storage.ignore import IgnoreRules
from server_extension.storage.localtree import scan_local
from server_extension.storage.manifest import Entry, Manifest, load_manifest, save_manifest
from server_extension.storage.plan import conflict_relpath, plan_restore
from server_extension.storage.s3 import RemoteObject, file_etag, md5_etag


def test_ignore_rules_hold_below_names_with_newlines():
    rules = IgnoreRules(["*.log", "build/", "data?.csv"])
    assert rules.ignored("a\nb/__pycache__", is_dir=True)
    assert rules.ignored("a\nb/__pycache__/m.pyc")
    assert rules.ignored("x\ny/node_modules", is_dir=True)
    assert rules.ignored("line\nbreak.log") and rules.ignored("x\ny/build", is_dir=True)
    assert rules.ignored("data\n.csv")  # "?" matches any character but "/", as in git
    assert not rules.ignored("a\nb/app.py")


def test_default_and_custom_ignore_rules():
    rules = IgnoreRules(["*.log", "build/", "!keep.log"])
    assert rules.ignored("node_modules", is_dir=True)
    assert rules.ignored("web/node_modules/react/index.js")
    assert rules.ignored(".venv/bin/python")
    assert rules.ignored("pkg/__pycache__/m.cpython-311.pyc")
    assert rules.ignored("x.pyc")
    assert rules.ignored(".cache/pip/x")
    assert rules.ignored(".codepilot/sync-manifest.json")
    assert rules.ignored(".virtual_documents", is_dir=True)
    assert rules.ignored(".virtual_documents/pairs.ipynb")
    assert rules.ignored("debug.log")
    assert not rules.ignored("keep.log")
    assert rules.ignored("build/out.js")
    assert not rules.ignored("src/build.py")
    assert not rules.ignored("src/app.py")
    assert not rules.ignored("node_modules", is_dir=False)  # a file of that name is fine


def _stat(size: int, mtime_ns: int) -> os.stat_result:
    # (mode, ino, dev, nlink, uid, gid, size, 3 x int times, 3 x float times, 3 x ns times)
    return os.stat_result((0o100644, 0, 0, 1, 0, 0, size, 0, 0, 0, 0.0, 0.0, 0.0, 0, mtime_ns, 0))


def test_restore_plan_decides_per_path():
    manifest = Manifest(
        "s3://b/p/",
        {
            "same.txt": Entry(1, 10, "e1"),
            "remote-changed.txt": Entry(1, 10, "old"),
            "local-changed.txt": Entry(1, 10, "e3"),
            "both-changed.txt": Entry(1, 10, "old"),
            "deleted-remotely.txt": Entry(1, 10, "e5"),
            "deleted-remotely-but-edited.txt": Entry(1, 10, "e6"),
        },
    )
    remote = {
        "same.txt": RemoteObject(1, "e1"),
        "remote-changed.txt": RemoteObject(2, "new"),
        "local-changed.txt": RemoteObject(1, "e3"),
        "both-changed.txt": RemoteObject(5, "new"),
        "missing-locally.txt": RemoteObject(3, "e7"),
        "unknown-same-size.txt": RemoteObject(4, "e8"),
        "unknown-other-size.txt": RemoteObject(4, "e9"),
        "folder/.s3keep": RemoteObject(0, "k"),
    }
    local = {
        "same.txt": _stat(1, 10),
        "remote-changed.txt": _stat(1, 10),
        "local-changed.txt": _stat(7, 99),
        "both-changed.txt": _stat(5, 99),
        "deleted-remotely.txt": _stat(1, 10),
        "deleted-remotely-but-edited.txt": _stat(2, 20),
        "new-locally.txt": _stat(1, 1),
        "unknown-same-size.txt": _stat(4, 1),
        "unknown-other-size.txt": _stat(9, 1),
    }
    plan = plan_restore(remote, local, manifest)
    assert plan.unchanged == ["same.txt"]
    assert sorted(plan.download) == ["missing-locally.txt", "remote-changed.txt"]
    # Both changed, or nobody knows which did: S3's version is restored, the local one kept.
    assert plan.conflicts == ["unknown-other-size.txt"]
    assert sorted(plan.verify) == ["both-changed.txt", "unknown-same-size.txt"]
    assert plan.local_changes == ["local-changed.txt"]
    assert plan.remove_local == ["deleted-remotely.txt"]
    assert plan.folders == ["folder"]
    assert plan.total == 7


def test_manifest_round_trip_and_location_check(tmp_path):
    manifest = Manifest("s3://b/p/", {"a.txt": Entry(3, 42, "abc")})
    save_manifest(tmp_path, manifest)
    assert load_manifest(tmp_path, "s3://b/p/").entries == {"a.txt": Entry(3, 42, "abc")}
    # A manifest of another location says nothing about this one.
    assert load_manifest(tmp_path, "s3://b/other/").entries == {}
    (tmp_path / ".codepilot" / "sync-manifest.json").write_text("{not json")
    assert load_manifest(tmp_path, "s3://b/p/").entries == {}


def test_a_manifest_belongs_to_one_endpoint_and_says_what_it_was(tmp_path):
    entries = {"a.txt": Entry(3, 42, "abc"), "b.txt": Entry(1, 1, "def")}
    save_manifest(tmp_path, Manifest("s3://b/p/", entries, endpoint="http://minio:9000"))
    assert load_manifest(tmp_path, "s3://b/p/", "http://minio:9000").entries == entries
    elsewhere = load_manifest(tmp_path, "s3://b/p/", "AWS")
    assert elsewhere.entries == {}
    assert elsewhere.foreign == ("s3://b/p/", "http://minio:9000", 2)


def test_a_manifest_of_the_first_format_counts_for_names_whose_keys_did_not_move(tmp_path):
    files = {"a.txt": [3, 42, "abc"], "data\\x.csv": [1, 1, "def"], "%%y": [1, 1, "0"]}
    document = {"version": 1, "location": "s3://b/p/", "files": files}
    (tmp_path / ".codepilot").mkdir()
    (tmp_path / ".codepilot" / "sync-manifest.json").write_text(json.dumps(document))
    assert load_manifest(tmp_path, "s3://b/p/", "AWS").entries == {"a.txt": Entry(3, 42, "abc")}


def test_conflict_names_stay_file_names():
    at = 1796524440.0  # 2026-12-06T02:34:00Z
    assert conflict_relpath("a/b.txt", at) == "a/b.txt.conflict-20261206T023400Z"
    assert conflict_relpath("b.txt", at, 2) == "b.txt.conflict-20261206T023400Z-2"
    long = os.fsdecode(b"\xe9" * 255)
    kept = conflict_relpath(f"d/{long}", at)
    assert kept.startswith("d/") and len(os.fsencode(kept[2:])) == 255
    assert kept.endswith(".conflict-20261206T023400Z")


def test_file_etags_match_s3(tmp_path):
    data = os.urandom(2500)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_etag(path, 1000) == md5_etag(data)
    parts = [data[0:1000], data[1000:2000], data[2000:]]
    import hashlib

    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert file_etag(path, 1000, parts=3) == expected


def test_scan_skips_symlinks_and_ignored(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x")
    (tmp_path / "node_modules" / "m").mkdir(parents=True)
    (tmp_path / "node_modules" / "m" / "i.js").write_text("x")
    (tmp_path / "link.txt").symlink_to("/etc/hostname")
    (tmp_path / "linkdir").symlink_to("/etc")
    tree = scan_local(tmp_path, IgnoreRules())
    assert set(tree.files) == {"src/a.py"}
    assert tree.dirs == {"src"}


def test_storage_mode_resolution():
    assert wiring.resolve_mode(None, "") == "local"
    assert wiring.resolve_mode(None, "bkt") == "sync"
    assert wiring.resolve_mode("s3", "bkt") == "s3"
    with pytest.raises(ValueError, match="CODEPILOT_S3_BUCKET"):
        wiring.resolve_mode("sync", "")
    # What each mode's manager is given: tests/test_workspace_location.py.


def test_starters_are_packaged():
    assert {"python", "flask", "node-express", "react-vite"} <= set(starter_names())
    flask = starter_dir("flask")
    assert "PORT" in (flask / "app.py").read_text()
    vite_config = (starter_dir("react-vite") / "vite.config.js").read_text()
    # Served at the root of its own origin: Vite's default base; its host check lets the
    # preview's own host in (from CODEPILOT_PREVIEW_URL), no other.
    assert "base:" not in vite_config and "allowedHosts: true" not in vite_config
    assert "new URL(process.env.CODEPILOT_PREVIEW_URL).hostname" in vite_config
    assert "process.env.PORT" in vite_config
    assert starter_dir("no-such-starter") is None
    assert isinstance(flask, Path)


def test_a_folder_listing_checks_the_folder_once_not_each_entry(tmp_path, monkeypatch):
    """A folder of 20,000 files lists in about stock's time: its entries' holder is the
    folder just found inside the workspace. A lone entry is still checked."""
    root = tmp_path / "workspace"
    (root / "data").mkdir(parents=True)
    for n in range(30):
        (root / "data" / f"item_{n}.txt").write_text(f"{n}\n")
    (root / "data" / "out").symlink_to(tmp_path)  # listed as stock lists it, not followed
    checked = []
    for name in ("is_inside", "holder_is_inside"):
        check = getattr(contents, name)
        monkeypatch.setattr(
            contents,
            name,
            lambda root, path, check=check: checked.append(path) or check(root, path),
        )
    manager = contents.WorkspaceFileManager(root_dir=str(root))

    listing = asyncio.run(manager.get("data"))
    assert len(listing["content"]) == 31 and checked == [str(root / "data")]
    asyncio.run(manager.get("data/item_0.txt", content=False))
    assert checked[1:] == [str(root / "data" / "item_0.txt")]
    with pytest.raises(web.HTTPError):
        asyncio.run(manager.get("data/out/workspace", content=False))


def test_an_entry_that_vanishes_at_every_listing_is_left_out_not_a_404(tmp_path):
    """A file replaced by rename again and again (an editor's swap file, a watcher's
    temporary output) can be gone at its own get in every listing: listing again is no
    cure, leaving it out is."""
    root = tmp_path / "workspace"
    (root / "busy").mkdir(parents=True)
    (root / "busy" / "kept.txt").write_text("kept")
    swap = root / "busy" / ".#swap.txt"
    swap.write_text("x")

    class ReplacedAtEveryGet(contents.WorkspaceFileManager):
        async def get(self, path, content=True, type=None, format=None, require_hash=False):
            if not content and path.endswith("#swap.txt"):
                swap.unlink()  # gone between the folder's scan and this get
                try:
                    return await super().get(path, content=False, type=type, format=format)
                finally:
                    swap.write_text("x")  # and back for the next listing
            return await super().get(path, content, type, format, require_hash)

    manager = ReplacedAtEveryGet(root_dir=str(root), allow_hidden=True)
    for _ in range(5):
        listing = asyncio.run(manager.get("busy"))
        assert [entry["name"] for entry in listing["content"]] == ["kept.txt"]
    with pytest.raises(web.HTTPError) as gone:
        asyncio.run(manager.get("busy/.#swap.txt", content=False))
    assert gone.value.status_code == 404  # asked for on its own, a vanished file is a 404


def test_a_folder_lists_while_its_files_come_and_go(tmp_path):
    """An entry renamed between the folder's scan and its own get (JupyterLab refreshing
    while a save renames untitled.txt, an install's temporary files) made stock's whole
    listing 404, which JupyterLab shows as "Directory not found"."""
    root = tmp_path / "workspace"
    (root / "busy").mkdir(parents=True)
    for n in range(200):
        (root / "busy" / f"f{n}.txt").write_text("x")
    manager = contents.WorkspaceFileManager(root_dir=str(root))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            for n in range(200):
                path = root / "busy" / f"f{n}.txt"
                moved = path.with_suffix(".tmp")
                path.rename(moved)
                moved.rename(path)

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        for _ in range(40):
            listing = asyncio.run(manager.get("busy"))  # raised 404 before
            assert listing["type"] == "directory" and 0 < len(listing["content"]) <= 200
    finally:
        stop.set()
        churner.join()
