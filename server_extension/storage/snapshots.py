"""Dependency snapshots: installed folders (``node_modules/``, ``.venv/``) kept in S3.

Sync leaves such folders out (they are installed, not written), so a restarted server
would come back without them. Each is saved as one compressed archive under the
workspace prefix, in ``.codepilot/snapshots/`` (a folder sync and restore skip):

- ``<folder>/<digest>.tar.gz``, the archive, where the digest is a hash of the S3 ETags
  of the lock files next to the folder that produced it (``package-lock.json``,
  ``requirements*.txt``, ...) and of the platform (OS, machine, Python and Node
  versions);
- ``<folder>.json``, its index: the digest, the lock files and ETags, the platform.

Restore compares the index with the lock files' ETags in the listing it has anyway and
unpacks the archive only when they match and the folder is missing locally: a lock
file that changed means the student installs as usual. A server takes snapshots when a
folder has been quiet for a while after an install and at stop, within the flush time;
a failed upload is tried again later.
"""

import asyncio
import contextlib
import fnmatch
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from traitlets import Dict, Float, Int
from traitlets.config import LoggingConfigurable

from codepilot_contracts import layout

from .archive import ArchiveError, check_links_out, extract_archive, write_archive
from .chunkpipe import ChunkPipe
from .ignore import STATE_DIR, IgnoreRules, is_state_path, load_ignore_rules
from .localtree import has_symlink_component, local_path
from .manifest import Manifest
from .pack import PACK, PackKeeper
from .s3 import RemoteObject, S3Error, S3Store, file_etag

SNAPSHOTS = f"{STATE_DIR}/snapshots"
INDEX_VERSION = 1

DEFAULT_FOLDERS = {
    "node_modules": ["package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"],
    ".venv": ["requirements*.txt", "pyproject.toml", "poetry.lock", "uv.lock", "Pipfile.lock"],
}


class SnapshotError(Exception):
    """A snapshot that could not be taken or restored (the workspace itself is fine)."""


# --- pure functions: names, keys, digests ---------------------------------------------------


def quoted_folder(folder: str) -> str:
    """A folder's path as one key segment; a name Linux allows and UTF-8 does not (an
    undecodable byte, kept as a surrogate) is quoted byte for byte, as the key layout does."""
    return quote(folder, safe="", errors="surrogateescape")


def archive_relpath(folder: str, digest: str) -> str:
    return f"{SNAPSHOTS}/{quoted_folder(folder)}/{digest}.tar.gz"


def index_relpath(folder: str) -> str:
    return f"{SNAPSHOTS}/{quoted_folder(folder)}.json"


def platform_tag(node_version: str) -> str:
    """What installed files depend on besides the lock files: OS, machine, runtimes."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"{sys.platform}-{platform.machine()}-py{python}-node{node_version or 'none'}"


def snapshot_digest(folder: str, lock_etags: dict[str, str], tag: str) -> str:
    text = json.dumps({"folder": folder, "locks": lock_etags, "platform": tag}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def index_document(
    folder: str, lock_etags: dict[str, str], tag: str, size: int, links: dict | None = None
) -> dict:
    """The index of one snapshot; ``links``: its symlinks out of the folder (name -> target)."""
    return {
        "version": INDEX_VERSION,
        "folder": folder,
        "digest": snapshot_digest(folder, lock_etags, tag),
        "locks": dict(sorted(lock_etags.items())),
        "platform": tag,
        "size": size,
        "links": dict(sorted((links or {}).items())),
    }


def parse_index(data: bytes) -> dict:
    """An index read from S3 (untrusted), checked; raises ``SnapshotError``."""
    try:
        index = json.loads(data)
        folder, locks = index["folder"], index["locks"]
        valid = (
            index.get("version") == INDEX_VERSION
            and isinstance(folder, str)
            and isinstance(locks, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in locks.items())
            and isinstance(index["platform"], str)
        )
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise SnapshotError("the snapshot index is not one this version understands")
    if layout.safe_object_relpath(folder) is None or is_state_path(folder):
        raise SnapshotError(f"the snapshot index names the folder {folder!r}: refused")
    try:
        index["links"] = check_links_out(index.get("links", {}))
    except ArchiveError as error:
        raise SnapshotError(str(error)) from error
    return index


def matches(index: dict, lock_etags: dict[str, str], tag: str) -> str:
    """Why the snapshot ``index`` does not fit the lock files and platform now; "" if it does."""
    if index["platform"] != tag:
        return f"taken on {index['platform']}, this is {tag}"
    if index["locks"] != lock_etags:
        changed = sorted(set(index["locks"]) ^ set(lock_etags)) or sorted(
            name for name in lock_etags if index["locks"].get(name) != lock_etags[name]
        )
        return f"lock files changed since the snapshot: {', '.join(changed)}"
    return ""


def lock_relpaths(parent: str, names: list[str], patterns: list[str]) -> list[str]:
    """The lock files among ``names`` (entries of the folder ``parent``), as relpaths."""
    chosen = sorted(name for name in names if any(fnmatch.fnmatchcase(name, p) for p in patterns))
    return [posixpath_join(parent, name) for name in chosen]


def posixpath_join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


@dataclass
class SnapshotSource:
    """An installed folder and the lock files that produce it, workspace-relative."""

    folder: str
    locks: list[str] = field(default_factory=list)


def find_sources(root: Path, folders: dict[str, list[str]], rules: IgnoreRules) -> list:
    """Installed folders at the top of the workspace and one level down (blocking).

    A folder counts when sync leaves it out and a lock file beside it is synced (else
    restore could not tell whether the snapshot still fits).
    """
    found = []
    parents = [""]
    try:
        with os.scandir(root) as entries:
            parents += [
                e.name
                for e in entries
                if e.is_dir(follow_symlinks=False)
                and e.name not in folders
                and not rules.ignored(e.name, is_dir=True)
            ]
    except OSError:
        return []
    for parent in sorted(parents):
        try:
            names = os.listdir(root / parent if parent else root)
        except OSError:
            continue
        for name, patterns in folders.items():
            folder = posixpath_join(parent, name)
            path = local_path(root, folder)
            if name not in names or path.is_symlink() or not path.is_dir():
                continue
            if not rules.ignored(folder, is_dir=True):
                continue
            locks = [
                lock
                for lock in lock_relpaths(parent, names, patterns)
                if not rules.ignored(lock) and local_path(root, lock).is_file()
            ]
            if locks:
                found.append(SnapshotSource(folder, locks))
    return found


def local_etag(path: Path, part_size: int, multipart_threshold: int) -> str:
    """The ETag the sync engine's upload of ``path`` gets (blocking)."""
    size = path.stat().st_size
    parts = 1 if size < multipart_threshold else max(1, math.ceil(size / part_size))
    return file_etag(path, part_size, parts)


def last_change(root: Path, source: SnapshotSource) -> float:
    """When the folder or its lock files last changed, as far as a cheap stat tells.

    npm and pip rewrite the folder's top level and their own records at the end of an
    install (``node_modules/.package-lock.json``, ``site-packages``), so these do.
    """
    folder = local_path(root, source.folder)
    paths = [folder, folder / ".package-lock.json", *(local_path(root, p) for p in source.locks)]
    paths += list(folder.glob("lib/python*/site-packages"))
    times = []
    for path in paths:
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime)
    return max(times, default=0.0)


async def node_version() -> str:
    """``node --version`` without the ``v``, or "" when there is no Node.js."""
    node = shutil.which("node")
    if node is None:
        return ""
    try:
        process = await asyncio.create_subprocess_exec(
            node, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    except (OSError, TimeoutError):
        return ""
    return output.decode(errors="replace").strip().lstrip("v")


# --- restore ------------------------------------------------------------------------------


@dataclass
class SnapshotRestore:
    """A snapshot that fits: where it goes and where it is in S3."""

    folder: str
    key: str
    size: int
    # Symlinks out of the folder (a venv's interpreter), made after unpacking.
    links_out: dict[str, str] = field(default_factory=dict)


def snapshot_indexes(key_prefix: str, listing: dict[str, RemoteObject]) -> list[str]:
    """The index keys in a workspace's listing."""
    start = layout.key_for(key_prefix, SNAPSHOTS + "/")
    return sorted(
        key
        for key in listing
        if key.startswith(start) and key.endswith(".json") and "/" not in key[len(start) :]
    )


def folder_of_index(key_prefix: str, key: str) -> str:
    """The folder an index key names (``.codepilot/snapshots/<quoted folder>.json``)."""
    name = key[len(layout.key_for(key_prefix, SNAPSHOTS + "/")) : -len(".json")]
    return unquote(name, errors="surrogateescape")


async def plan_snapshots(
    store: S3Store, key_prefix: str, root: Path, listing: dict[str, RemoteObject], rules
) -> tuple[list[SnapshotRestore], dict[str, str]]:
    """Snapshots to unpack, and why the others are not (by folder or index key).

    A folder that is there already costs no request: only the indexes of missing
    folders are read.
    """
    index_keys = snapshot_indexes(key_prefix, listing)
    skipped: dict[str, str] = {}
    wanted = []
    for key in index_keys:
        folder = folder_of_index(key_prefix, key)
        if layout.safe_object_relpath(folder) is None or is_state_path(folder):
            skipped[key] = f"the snapshot index names the folder {folder!r}: refused"
            continue
        why_not = await asyncio.to_thread(_local_obstacle, root, folder)
        if why_not:
            skipped[folder] = why_not
        else:
            wanted.append((key, folder))
    if not wanted:
        return [], skipped
    chosen: list[SnapshotRestore] = []
    node, *documents = await asyncio.gather(
        node_version(),
        *(store.read_bytes(key) for key, _ in wanted),
        return_exceptions=True,
    )
    tag = platform_tag(node if isinstance(node, str) else "")
    for (key, folder), document in zip(wanted, documents, strict=True):
        try:
            if isinstance(document, BaseException):
                raise SnapshotError(str(document))
            index = parse_index(document)
        except SnapshotError as error:
            skipped[key] = str(error)
            continue
        if index["folder"] != folder:
            skipped[key] = f"the snapshot index names another folder, {index['folder']!r}"
            continue
        if not rules.ignored(folder, is_dir=True):
            skipped[folder] = "the folder is synced file by file, not as a snapshot"
            continue
        lock_etags = {}
        for lock in index["locks"]:
            remote = listing.get(layout.key_for(key_prefix, lock))
            if layout.safe_object_relpath(lock) is not None and remote is not None:
                lock_etags[lock] = remote.etag
        why_not = matches(index, lock_etags, tag)
        archive_key = layout.key_for(key_prefix, archive_relpath(folder, index["digest"]))
        if not why_not and archive_key not in listing:
            why_not = "its archive is missing"
        if why_not:
            skipped[folder] = why_not
        else:
            chosen.append(
                SnapshotRestore(folder, archive_key, listing[archive_key].size, index["links"])
            )
    return chosen, skipped


def _local_obstacle(root: Path, folder: str) -> str:
    """Why ``folder`` cannot be unpacked locally now; "" when it can (blocking)."""
    if os.path.lexists(local_path(root, folder)):
        return "the folder is there already"
    if has_symlink_component(root, folder):
        return "a parent folder is a symlink: refused"
    return ""


async def restore_snapshot(
    store: S3Store, root: Path, snapshot: SnapshotRestore, scratch: Path, max_bytes: int
) -> None:
    """Download and unpack one snapshot at once, the bytes unpacked as they arrive.

    Raises ``SnapshotError`` (nothing written).
    """
    target = local_path(root, snapshot.folder)
    pipe = ChunkPipe()
    try:
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    except OSError as error:
        raise SnapshotError(f"snapshot of {snapshot.folder} not restored: {error}") from error
    unpacking = asyncio.ensure_future(
        asyncio.to_thread(_unpack_from, pipe, target, scratch, max_bytes, snapshot.links_out)
    )
    download_error = None
    try:
        async for chunk in store.chunks(snapshot.key):
            # Straight into the pipe while the reader keeps up; a thread waits when not.
            if not pipe.try_put(chunk) and not await asyncio.to_thread(pipe.put, chunk):
                break  # the archive was refused: no need for the rest
        await asyncio.to_thread(pipe.end)
    except S3Error as error:
        download_error = error
    finally:
        if not pipe.ended:
            # The download failed or was cancelled: the reader must not wait for more.
            await asyncio.to_thread(pipe.fail, download_error or SnapshotError("stopped"))
        if not unpacking.done():
            await asyncio.wait([unpacking])
    try:
        unpacking.result()
    except (ArchiveError, OSError) as error:
        raise SnapshotError(
            f"snapshot of {snapshot.folder} not restored: {download_error or error}"
        ) from error


def _unpack_from(pipe: ChunkPipe, target: Path, scratch: Path, max_bytes: int, links) -> None:
    try:
        # Unbuffered: the extractor takes each chunk as it comes, not once 1 MB is there.
        extract_archive(pipe, target, scratch, max_bytes, links)
    finally:
        pipe.abandon()


# --- taking snapshots while a server runs ---------------------------------------------------


class DependencySnapshots(LoggingConfigurable):
    """Takes and uploads the snapshots of one workspace, and its small-files pack.

    It reads the workspace folder ``root`` and writes under ``key_prefix`` in ``store``;
    the pack is made from ``synced``, the sync engine's record of what S3 holds. Whoever
    runs the sync too sequences both (``keeper.WorkspaceKeeper``): files first.
    """

    folders = Dict(
        DEFAULT_FOLDERS,
        help="""Installed folders saved as snapshots, by name, each with the lock file
        patterns (beside it) that produce it. A folder is looked for at the top of the
        workspace and one level down, and must be one sync leaves out
        (``.codepilotignore`` and the defaults). An empty dict turns snapshots off.""",
    ).tag(config=True)

    quiet_seconds = Float(
        20.0,
        help="""Seconds a folder and its lock files must stay unchanged (an install has
        finished) before a running server takes its snapshot.""",
    ).tag(config=True)

    check_interval = Float(
        10.0,
        help="""Seconds between looks for a folder whose snapshot is out of date; after a
        failed upload, the next try waits up to ten times as long.""",
    ).tag(config=True)

    compression_level = Int(
        1,
        help="""gzip level of the archives (1: fastest; installed files compress about
        as well at 1 as at 9, and a snapshot at stop has the flush time only).""",
    ).tag(config=True)

    max_unpacked_bytes = Int(
        8 * 1024**3,
        help="""Largest size a snapshot may unpack to; a larger one is refused at restore
        (a small archive that would fill the disk).""",
    ).tag(config=True)

    pack_min_changes = Int(
        50,
        help="""A running server uploads a new small-files pack (one GET instead of
        thousands at restore) when this many small files differ from the last pack; a
        stopping one when any do. 0 turns the pack off.""",
    ).tag(config=True)

    def __init__(self, root: Path, store: S3Store, key_prefix: str, synced: Manifest, **kwargs):
        super().__init__(**kwargs)
        self.root = root
        self.store = store
        self.key_prefix = key_prefix
        self.pack = PackKeeper(root, store, key_prefix, synced)
        # Digest of the snapshot S3 holds, by folder (read from the indexes once).
        self._uploaded: dict[str, str] | None = None
        self._tag: str | None = None
        self.last_error: str | None = None

    async def _platform(self) -> str:
        if self._tag is None:
            self._tag = platform_tag(await node_version())
        return self._tag

    async def _load_uploaded(self) -> dict[str, str]:
        if self._uploaded is None:
            prefix = self.key_prefix
            listing = await self.store.list(layout.key_for(prefix, SNAPSHOTS + "/"))
            uploaded = {}
            for key in snapshot_indexes(prefix, listing):
                try:
                    index = parse_index(await self.store.read_bytes(key))
                    uploaded[index["folder"]] = index["digest"]
                except SnapshotError:
                    continue
            self._uploaded = uploaded
        return self._uploaded

    async def due(self, quiet_seconds: float) -> list[tuple[SnapshotSource, dict[str, str]]]:
        """Folders whose snapshot in S3 is missing or out of date, with their lock ETags."""
        if not self.folders:
            return []
        sources = await asyncio.to_thread(self._sources)
        if not sources:
            return []
        uploaded = await self._load_uploaded()
        tag = await self._platform()
        now = time.time()
        due = []
        for source in sources:
            if now - await asyncio.to_thread(last_change, self.root, source) < quiet_seconds:
                continue
            lock_etags = {
                lock: await asyncio.to_thread(
                    local_etag,
                    local_path(self.root, lock),
                    self.store.part_size,
                    self.store.multipart_threshold,
                )
                for lock in source.locks
            }
            if uploaded.get(source.folder) != snapshot_digest(source.folder, lock_etags, tag):
                due.append((source, lock_etags))
        return due

    def _sources(self) -> list[SnapshotSource]:
        """The folders to keep, by the ignore rules the workspace has now (blocking)."""
        return find_sources(self.root, dict(self.folders), load_ignore_rules(self.root))

    async def take(self, source: SnapshotSource, lock_etags: dict[str, str]) -> dict:
        """Pack and upload one folder's snapshot, then its index; raises ``SnapshotError``."""
        tag = await self._platform()
        index = index_document(source.folder, lock_etags, tag, 0)
        scratch = self.root / STATE_DIR / "tmp"
        archive = scratch / f"snapshot-{uuid.uuid4().hex}.tar.gz"
        prefix = self.key_prefix
        started = time.monotonic()
        try:
            await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
            summary = await asyncio.to_thread(
                write_archive,
                local_path(self.root, source.folder),
                archive,
                self.compression_level,
            )
            size = (await asyncio.to_thread(archive.stat)).st_size
            index.update(size=size, links=summary.links_out)
            await self.store.upload_file(
                archive,
                layout.key_for(prefix, archive_relpath(source.folder, index["digest"])),
                size,
            )
            # The index goes last: restore never sees an index whose archive is not there.
            await self.store.put_bytes(
                layout.key_for(prefix, index_relpath(source.folder)),
                json.dumps(index).encode(),
            )
        except (S3Error, OSError) as error:
            raise SnapshotError(f"snapshot of {source.folder} not saved: {error}") from error
        finally:
            await asyncio.to_thread(archive.unlink, True)
        if self._uploaded is not None:
            self._uploaded[source.folder] = index["digest"]
        if summary.left_out:
            self.log.info(
                "Code Pilot: snapshot of %s leaves out %d special files or links (%s)",
                source.folder,
                len(summary.left_out),
                ", ".join(summary.left_out[:5]),
            )
        self.log.info(
            "Code Pilot: snapshot of %s saved: %d files, %d bytes as %d in %.1f s",
            source.folder,
            summary.files,
            summary.bytes,
            size,
            time.monotonic() - started,
        )
        return index

    async def take_due(self, quiet_seconds: float) -> list[str]:
        """Take every snapshot that is due, and the pack; returns what failed.

        ``quiet_seconds`` 0 (at stop): everything out of date, however recent.
        """
        failed = []
        try:
            due = await self.due(quiet_seconds)
        except (S3Error, OSError) as error:
            self.last_error = str(error)
            self.log.warning("Code Pilot: snapshots not checked: %s", error)
            return ["*"]
        if self.pack_min_changes > 0:
            try:
                await self.pack.refresh(1 if quiet_seconds == 0 else self.pack_min_changes)
            except (S3Error, OSError) as error:
                self.last_error = str(error)
                self.log.warning("Code Pilot: small-files pack not saved: %s", error)
                failed.append(PACK)
        for source, lock_etags in due:
            try:
                await self.take(source, lock_etags)
            except SnapshotError as error:
                self.last_error = str(error)
                self.log.warning("Code Pilot: %s; trying again later", error)
                failed.append(source.folder)
        if not failed:
            self.last_error = None
        return failed

    async def run(self, files_pending: Callable[[], bool]) -> None:
        """Look for out-of-date snapshots every ``check_interval`` while the server runs,
        whenever ``files_pending()`` says no file waits for S3."""
        backoff = self.check_interval
        while True:
            await asyncio.sleep(backoff)
            if files_pending():
                continue  # files first: a snapshot waits for a quiet moment
            failed = await self.take_due(self.quiet_seconds)
            backoff = min(backoff * 2, self.check_interval * 10) if failed else self.check_interval

    async def at_stop(self, time_limit: float) -> None:
        """Take what is due within ``time_limit`` seconds (the rest of the flush time)."""
        if time_limit <= 0 or not self.folders:
            return
        try:
            failed = await asyncio.wait_for(self.take_due(0), time_limit)
        except TimeoutError:
            self.log.warning(
                "Code Pilot: out of flush time before the dependency snapshots were saved; "
                "the next server takes them"
            )
            return
        if failed:
            self.log.warning("Code Pilot: snapshots not saved at stop: %s", ", ".join(failed))
