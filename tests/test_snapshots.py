"""Dependency snapshots: archives that keep links and modes, refuse hostile or damaged
input, restore against a real S3 API (moto) only while the lock files still match, and
survive an S3 outage during their upload."""

import asyncio
import gzip
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest

from codepilot_contracts import layout
from server_extension.storage.archive import (
    ArchiveError,
    extract_archive,
    link_stays_inside,
    write_archive,
)
from server_extension.storage.chunkpipe import ChunkPipe
from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.keeper import WorkspaceKeeper, dependency_snapshots
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store
from server_extension.storage.snapshots import (
    SnapshotError,
    archive_relpath,
    folder_of_index,
    index_relpath,
    matches,
    parse_index,
)

from .support.s3server import s3_server_fixture

BUCKET = "snapshots"
s3 = s3_server_fixture(buckets=(BUCKET,))


def make_node_project(root: Path, lock: str = '{"lockfileVersion": 3}') -> None:
    (root / "package.json").write_text('{"name": "app"}')
    (root / "package-lock.json").write_text(lock)
    package = root / "node_modules" / "tool"
    (package / "bin").mkdir(parents=True)
    script = package / "bin" / "tool.js"
    script.write_text("#!/usr/bin/env node\nconsole.log('hi')\n")
    script.chmod(0o755)
    (package / "index.js").write_text("module.exports = 1\n")
    (root / "node_modules" / ".bin").mkdir()
    (root / "node_modules" / ".bin" / "tool").symlink_to("../tool/bin/tool.js")
    (root / "node_modules" / "escape").symlink_to("/etc")  # points out: left out


def tar_with(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members:
            member.size = len(data) if member.isreg() else 0
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return buffer.getvalue()


def member(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


def files_below(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


# --- archives -------------------------------------------------------------------------------


def test_archive_round_trip_keeps_links_and_exec_bits_and_leaves_out_links_out(tmp_path):
    make_node_project(tmp_path)
    archive = tmp_path / "snap.tar.gz"
    summary = write_archive(tmp_path / "node_modules", archive)
    # The link out is no member: it is listed, to be made again as a link only.
    assert summary.files == 2 and summary.left_out == []
    assert summary.links_out == {"escape": "/etc"}
    with tarfile.open(archive) as tar:
        assert "escape" not in tar.getnames()
    target = tmp_path / "restored" / "node_modules"
    target.parent.mkdir()
    extract_archive(archive, target, tmp_path / "scratch", 10**9)
    link = target / ".bin" / "tool"
    assert link.is_symlink() and os.readlink(link) == "../tool/bin/tool.js"
    assert link.read_text().startswith("#!/usr/bin/env node")
    assert os.stat(link).st_mode & stat.S_IXUSR
    assert not (target / "tool" / "index.js").stat().st_mode & stat.S_IXUSR
    assert not os.path.lexists(target / "escape")
    assert not list((tmp_path / "scratch").iterdir())

    again = tmp_path / "again" / "node_modules"
    again.parent.mkdir()
    extract_archive(archive, again, tmp_path / "scratch", 10**9, summary.links_out)
    assert os.readlink(again / "escape") == "/etc"


HOSTILE_LINKS_OUT = {
    "dot-dot name": {"../outside": "/etc"},
    "absolute name": {"/tmp/codepilot-link-outside": "/etc"},
    "through a link member": {".bin/tool/x": "/etc"},
    "over a member": {".bin/tool": "/etc"},
    "below a missing folder": {"nowhere/x": "/etc"},
    "NUL in target": {"x": "/etc\x00"},
    "empty target": {"x": ""},
    "not a dict": ["x"],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LINKS_OUT))
def test_hostile_links_out_are_refused_and_write_nothing(tmp_path, case):
    make_node_project(tmp_path)
    archive = tmp_path / "snap.tar.gz"
    write_archive(tmp_path / "node_modules", archive)
    before = files_below(tmp_path)
    target = tmp_path / "restored" / "node_modules"
    target.parent.mkdir()
    with pytest.raises(ArchiveError, match="refused"):
        extract_archive(archive, target, tmp_path / "scratch", 10**9, HOSTILE_LINKS_OUT[case])
    assert files_below(tmp_path) - before <= {"restored", "scratch"}
    assert not os.path.lexists("/tmp/codepilot-link-outside")


HOSTILE = {
    "dot-dot": [(member("../outside.txt"), b"x")],
    "absolute": [(member("/tmp/codepilot-absolute-outside.txt"), b"x")],
    "symlink-out": [(member("link", tarfile.SYMTYPE, "../../"), b"")],
    "absolute-symlink": [(member("link", tarfile.SYMTYPE, "/etc"), b"")],
    "write-through-symlink": [
        (member("sub", tarfile.SYMTYPE, "."), b""),
        (member("sub/../../outside.txt"), b"x"),
    ],
    "hardlink": [(member("ok.txt"), b"x"), (member("hard", tarfile.LNKTYPE, "ok.txt"), b"")],
    "hardlink-out": [(member("hard", tarfile.LNKTYPE, "../../etc/passwd"), b"")],
    "device": [(member("null", tarfile.CHRTYPE), b"")],
    "fifo": [(member("pipe", tarfile.FIFOTYPE), b"")],
}


# Shapes only a hand-made archive has: refused by the extractor's own name rules.
HOSTILE_SHAPES = {
    "file under a symlink member": [
        (member("real", tarfile.DIRTYPE), b""),
        (member("sub", tarfile.SYMTYPE, "real"), b""),
        (member("sub/x.txt"), b"x"),
    ],
    "symlink member over a folder of files": [
        (member("sub/x.txt"), b"x"),
        (member("sub", tarfile.SYMTYPE, "."), b""),
    ],
    "duplicate file": [(member("a.txt"), b"x"), (member("a.txt"), b"y")],
    "folder then file of the same name": [
        (member("a", tarfile.DIRTYPE), b""),
        (member("a"), b"x"),
    ],
    "file then a file below it": [(member("a"), b"x"), (member("a/b"), b"y")],
    "symlink chain out": [
        (member("c", tarfile.SYMTYPE, "."), b""),
        (member("a", tarfile.SYMTYPE, "c/../outside"), b""),
    ],
    "empty part": [(member("a//b.txt"), b"x")],
    "dot part": [(member("a/./b.txt"), b"x")],
    "after many good files": [
        *((member(f"pkg{n % 7}/f{n}.js"), b"ok %d" % n) for n in range(400)),
        (member("../late.txt"), b"x"),
    ],
}


HOSTILE_ARCHIVES = {**HOSTILE, **HOSTILE_SHAPES}


@pytest.mark.parametrize("case", sorted(HOSTILE_ARCHIVES))
def test_hostile_archive_is_refused_and_writes_nothing(tmp_path, case):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_with(*HOSTILE_ARCHIVES[case]))
    before = files_below(tmp_path)
    with pytest.raises(ArchiveError, match="refused"):
        extract_archive(archive, workspace / "node_modules", workspace / "scratch", 10**9)
    assert files_below(tmp_path) - before <= {"ws/scratch"}
    assert not (workspace / "scratch").exists() or not list((workspace / "scratch").iterdir())
    assert not Path("/tmp/codepilot-absolute-outside.txt").exists()


@pytest.mark.parametrize(
    ("name", "target", "inside"),
    [
        (".bin/tool", "../tool/bin/tool.js", True),
        ("lib64", "lib", True),
        ("a/b/c", "../../x", True),
        ("a/b/c", "../../../x", False),
        ("link", "../x", False),
        ("link", "c/../x", False),  # lexically inside, but c may be a link itself
        ("link", "/etc", False),
        ("link", "", False),
        ("link", "x\x00", False),
        ("link", ".", True),
    ],
)
def test_which_symlinks_stay_inside(name, target, inside):
    assert link_stays_inside(name, target) is inside


def test_a_file_the_disk_refuses_fails_the_unpack_and_leaves_nothing(tmp_path):
    """A writer thread's error (here a name longer than the file system allows) stops
    the unpack; every other file written meanwhile goes with the scratch folder."""
    files = [(member(f"pkg/f{n}.js"), b"ok") for n in range(300)]
    archive = tmp_path / "long.tar.gz"
    archive.write_bytes(tar_with(*files, (member("pkg/" + "n" * 300), b"x")))
    with pytest.raises(OSError, match="File name too long"):
        extract_archive(archive, tmp_path / "out", tmp_path / "scratch", 10**9)
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "scratch").iterdir())


def test_links_inside_are_made_after_the_files_and_may_chain(tmp_path):
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(
        tar_with(
            (member("lib", tarfile.SYMTYPE, "real"), b""),
            (member("real", tarfile.DIRTYPE), b""),
            (member("real/x.txt"), b"x"),
            (member("deep/link", tarfile.SYMTYPE, "../lib/x.txt"), b""),
        )
    )
    target = tmp_path / "out"
    extract_archive(archive, target, tmp_path / "scratch", 10**9)
    assert (target / "deep" / "link").read_text() == "x"
    assert os.path.realpath(target / "deep" / "link") == str(target / "real" / "x.txt")
    assert (target / "real").is_dir() and not (target / "real").is_symlink()


def test_long_and_unicode_names_modes_and_times_survive(tmp_path):
    folder = tmp_path / "node_modules"
    long_name = "pkg-" + "x" * 150 + "/" + "é-ünïcode-" + "y" * 120 + ".js"
    path = folder / long_name
    path.parent.mkdir(parents=True)
    path.write_text("long")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    script = folder / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o4775)  # set-uid and group write are dropped, exec bits kept
    archive = tmp_path / "snap.tar.gz"
    write_archive(folder, archive)
    target = tmp_path / "out"
    extract_archive(archive, target, tmp_path / "scratch", 10**9)
    assert (target / long_name).read_text() == "long"
    assert (target / long_name).stat().st_mtime == 1_600_000_000
    assert stat.S_IMODE((target / "run.sh").stat().st_mode) == 0o755 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_declared_size_over_the_ceiling_is_refused_before_any_byte(tmp_path):
    """The header alone says 1 TB: refused at once, nothing read or written."""
    header = member("huge.bin")
    header.size = 10**12
    archive = tmp_path / "huge.tar.gz"
    archive.write_bytes(gzip.compress(header.tobuf(tarfile.PAX_FORMAT)))
    with pytest.raises(ArchiveError, match="more than 1000 bytes"):
        extract_archive(archive, tmp_path / "out", tmp_path / "scratch", 1000)
    assert not (tmp_path / "out").exists()


DAMAGED = {
    "bytes after the gzip stream": lambda data: data + b"trailing",
    "a flipped byte": lambda data: data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
    "not gzip": lambda data: b"PK\x03\x04" + data,
    "data after the tar end": lambda data: gzip.compress(
        gzip.decompress(data) + b"hidden" + bytes(1024)
    ),
    "a bad header checksum": lambda data: gzip.compress(b"X" + gzip.decompress(data)[1:]),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_archive_gives_a_clear_error_and_writes_nothing(tmp_path, case):
    make_node_project(tmp_path)
    archive = tmp_path / "snap.tar.gz"
    write_archive(tmp_path / "node_modules", archive)
    archive.write_bytes(DAMAGED[case](archive.read_bytes()))
    with pytest.raises(ArchiveError, match="damaged or truncated"):
        extract_archive(archive, tmp_path / "out", tmp_path / "scratch", 10**9)
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "scratch").iterdir())


def test_truncated_archive_gives_a_clear_error_and_writes_nothing(tmp_path):
    make_node_project(tmp_path)
    archive = tmp_path / "snap.tar.gz"
    write_archive(tmp_path / "node_modules", archive)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="damaged or truncated"):
        extract_archive(archive, tmp_path / "out", tmp_path / "scratch", 10**9)
    assert not (tmp_path / "out").exists()


def test_archive_larger_than_allowed_unpacked_is_refused(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(tar_with((member("zeros"), bytes(100_000))))
    with pytest.raises(ArchiveError, match="more than 1000 bytes"):
        extract_archive(archive, tmp_path / "out", tmp_path / "scratch", 1000)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder", ["node_modules", "web app/.venv", "caf\udce9/node_modules"])
def test_a_folders_snapshot_keys_name_it_back_whatever_its_bytes(folder):
    # "caf\xe9" is Latin-1 on disk: Linux allows it, UTF-8 does not (a surrogate in Python).
    prefix = "cp/users/ada/default/"
    index_key = layout.key_for(prefix, index_relpath(folder))
    assert folder_of_index(prefix, index_key) == folder
    assert layout.key_for(prefix, archive_relpath(folder, "ab12")).isascii()


def test_index_from_s3_is_checked():
    good = {"version": 1, "folder": "node_modules", "locks": {}, "platform": "x", "digest": "d"}
    assert parse_index(json.dumps(good).encode())["folder"] == "node_modules"
    for folder in ("../x", "/abs", ".codepilot/x", "a//b"):
        with pytest.raises(SnapshotError):
            parse_index(json.dumps({**good, "folder": folder}).encode())
    with pytest.raises(SnapshotError):
        parse_index(b"not json")
    index = {**good, "locks": {"package-lock.json": "e1"}}
    assert matches(index, {"package-lock.json": "e1"}, "x") == ""
    assert "package-lock.json" in matches(index, {"package-lock.json": "e2"}, "x")
    assert "taken on x" in matches(index, {"package-lock.json": "e1"}, "y")


# --- against S3 ----------------------------------------------------------------------------


def run(coroutine):
    return asyncio.run(coroutine)


async def push_and_snapshot(s3, root: Path, user: str) -> tuple[WorkspaceSync, list[str]]:
    store = S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url))
    sync = WorkspaceSync(root, store, layout.workspace_prefix("", user))
    assert not await sync.push_tree("")
    failed = await dependency_snapshots(sync).take_due(0)
    await store.close()
    return sync, failed


async def restore_into(s3, root: Path, user: str):
    location = WorkspaceLocation.of_workspace(BUCKET, "", user, endpoint_url=s3.endpoint_url)
    async with S3Store(location) as store:
        return await restore_workspace(store, location, root)


@pytest.mark.integration
def test_snapshot_restores_into_an_empty_workspace_until_the_lock_file_changes(s3, s3_env):
    user = "snap-ana"
    keys = layout.workspace_prefix("", user)
    source = Path(tempfile.mkdtemp())
    make_node_project(source)
    _, failed = run(push_and_snapshot(s3, source, user))
    assert failed == []
    index = json.loads(s3.read(BUCKET, keys + index_relpath("node_modules")))
    assert keys + archive_relpath("node_modules", index["digest"]) in s3.keys(BUCKET, keys)
    # Per-file objects stay what s3contents reads: no node_modules file among them.
    assert not any(
        "node_modules/" in key for key in s3.keys(BUCKET, keys) if ".codepilot" not in key
    )

    fresh = Path(tempfile.mkdtemp())
    result = run(restore_into(s3, fresh, user))
    assert result.snapshots == {"node_modules": "restored"} and not result.failed
    assert os.readlink(fresh / "node_modules/.bin/tool") == "../tool/bin/tool.js"
    assert os.access(fresh / "node_modules/.bin/tool", os.X_OK)
    assert (fresh / "package-lock.json").read_text() == '{"lockfileVersion": 3}'

    # Same workspace again: the folder is there, the snapshot is left alone.
    again = run(restore_into(s3, fresh, user))
    assert again.snapshots == {"node_modules": "the folder is there already"}

    # The lock file changes (another machine pushed it): the old snapshot no longer fits.
    s3.client(direct=True).put_object(
        Bucket=BUCKET, Key=keys + "package-lock.json", Body=b'{"lockfileVersion": 3, "x": 1}'
    )
    changed = Path(tempfile.mkdtemp())
    result = run(restore_into(s3, changed, user))
    assert "lock files changed" in result.snapshots["node_modules"]
    assert not (changed / "node_modules").exists()
    assert (changed / "package.json").exists()


@pytest.mark.integration
def test_snapshot_is_not_taken_again_while_nothing_changed(s3, s3_env):
    user = "snap-ben"
    root = Path(tempfile.mkdtemp())
    make_node_project(root)
    run(push_and_snapshot(s3, root, user))

    async def due_again():
        async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
            sync = WorkspaceSync(root, store, layout.workspace_prefix("", user))
            return await dependency_snapshots(sync).due(0)

    assert run(due_again()) == []
    (root / "package-lock.json").write_text('{"lockfileVersion": 3, "y": 2}')
    assert [source.folder for source, _ in run(due_again())] == ["node_modules"]


@pytest.mark.integration
def test_hostile_snapshot_in_s3_is_refused_and_the_files_still_restore(s3, s3_env):
    user = "snap-cy"
    keys = layout.workspace_prefix("", user)
    source = Path(tempfile.mkdtemp())
    make_node_project(source)
    run(push_and_snapshot(s3, source, user))
    index = json.loads(s3.read(BUCKET, keys + index_relpath("node_modules")))
    bad = tar_with((member("ok.txt"), b"fine"), (member("../../../pwned.txt"), b"x"))
    s3.client(direct=True).put_object(
        Bucket=BUCKET, Key=keys + archive_relpath("node_modules", index["digest"]), Body=bad
    )
    parent = Path(tempfile.mkdtemp())
    fresh = parent / "a" / "b" / "ws"
    result = run(restore_into(s3, fresh, user))
    assert "refused" in result.snapshots["node_modules"], result.snapshots
    assert not result.failed and (fresh / "package.json").exists()
    assert not (fresh / "node_modules").exists()
    assert not any(path.name == "pwned.txt" for path in parent.rglob("*"))

    # A truncated archive: a clear error, skipped.
    good = s3.client(direct=True)
    good.put_object(
        Bucket=BUCKET, Key=keys + archive_relpath("node_modules", index["digest"]), Body=bad[:40]
    )
    result = run(restore_into(s3, Path(tempfile.mkdtemp()), user))
    assert "damaged or truncated" in result.snapshots["node_modules"]


@pytest.mark.integration
def test_s3_outage_during_snapshot_upload_keeps_the_server_working_and_retries(s3, s3_env):
    user = "snap-dee"
    keys = layout.workspace_prefix("", user)
    root = Path(tempfile.mkdtemp())
    make_node_project(root)

    async def scenario():
        store = S3Store(
            WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url),
            connect_timeout=1,
            read_timeout=2,
        )
        sync = WorkspaceSync(root, store, keys)
        snapshots = dependency_snapshots(sync, check_interval=0.2, quiet_seconds=0)
        keeper = WorkspaceKeeper(sync, snapshots)
        assert not await sync.push_tree("")
        assert len(await snapshots.due(0)) == 1  # S3 answers: the snapshot is due
        with s3.outage():
            failed = await snapshots.take_due(0)  # the upload meets the outage
            assert "node_modules" in failed
            assert "unreachable" in snapshots.last_error
            assert not list((root / ".codepilot" / "tmp").iterdir())  # no archive left
            # The server's sync goes on: an edit made now is pushed once S3 is back.
            (root / "during.txt").write_text("written during the outage")
            keeper.start()
            sync.schedule(["during.txt"])
            await asyncio.sleep(0.5)
        for _ in range(100):  # the snapshot loop tries again by itself
            await asyncio.sleep(0.2)
            if snapshots.last_error is None and not sync.pending:
                break
        # Retried by the running loop, before any stop.
        assert keys + index_relpath("node_modules") in s3.keys(BUCKET, keys)
        return await keeper.stop(5)

    left = run(scenario())
    assert left == []
    assert keys + index_relpath("node_modules") in s3.keys(BUCKET, keys)
    assert s3.read(BUCKET, keys + "during.txt") == b"written during the outage"


@pytest.mark.integration
def test_a_restored_venv_runs_without_being_created_again(s3, s3_env):
    """A venv's interpreter is a link out of it (``bin/python`` -> the system's): the
    snapshot keeps it, so the venv restored at the same path works as it was."""
    user = "snap-eve"
    keys = layout.workspace_prefix("", user)
    root = Path(tempfile.mkdtemp()) / "workspace"
    root.mkdir()
    (root / "requirements.txt").write_text("# nothing from PyPI\n")
    interpreter = os.path.realpath(sys.executable)
    subprocess.run([interpreter, "-m", "venv", "--without-pip", str(root / ".venv")], check=True)
    site_packages = next((root / ".venv" / "lib").glob("python*/site-packages"))
    (site_packages / "codepilot_probe.py").write_text("VALUE = 42\n")
    bin_dir = root / ".venv" / "bin"
    links_out = {
        f"bin/{path.name}": os.readlink(path)
        for path in bin_dir.iterdir()
        if path.is_symlink() and os.path.isabs(os.readlink(path))
    }
    assert links_out  # the interpreter, outside the venv

    _, failed = run(push_and_snapshot(s3, root, user))
    assert failed == []
    index = json.loads(s3.read(BUCKET, keys + index_relpath(".venv")))
    assert index["links"] == links_out

    shutil.rmtree(root)  # the workspace is gone; the next start restores it
    result = run(restore_into(s3, root, user))
    assert result.snapshots == {".venv": "restored"} and not result.failed
    probe = subprocess.run(
        [root / ".venv" / "bin" / "python", "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == [str(root / ".venv"), "42"]


PROBE = "import sys, codepilot_probe; print(sys.prefix, codepilot_probe.VALUE)"


@pytest.mark.parametrize("ending", ["connection lost", "clean end"])
def test_an_archive_cut_off_while_it_streams_in_writes_nothing(tmp_path, ending):
    """Snapshots unpack as they download: a download that breaks off half-way (or a
    stream that ends early) fails the unpack, and nothing is left behind."""
    make_node_project(tmp_path)
    archive = tmp_path / "snap.tar.gz"
    write_archive(tmp_path / "node_modules", archive)
    data = archive.read_bytes()
    pipe = ChunkPipe()

    def download():
        for start in range(0, len(data) // 2, 100):
            pipe.put(data[start : min(start + 100, len(data) // 2)])
        if ending == "connection lost":
            pipe.fail(ConnectionResetError("reset by peer"))
        else:
            pipe.end()

    threading.Thread(target=download, daemon=True).start()
    expected, message = {
        "connection lost": (OSError, "download interrupted"),
        "clean end": (ArchiveError, "damaged or truncated"),
    }[ending]
    target = tmp_path / "restored" / "node_modules"
    target.parent.mkdir()
    with pytest.raises(expected, match=message):
        extract_archive(io.BufferedReader(pipe), target, tmp_path / "scratch", 10**9)
    assert not target.exists()
    assert not list((tmp_path / "scratch").iterdir())
