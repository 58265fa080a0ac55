"""Bring a local workspace up to date with its S3 copy: only what is missing or changed.

``plan_restore`` decides, from the object listing, the local files' stat and the
manifest, what each path needs; ``restore_workspace`` carries the plan out with
concurrent downloads. A first start (nothing in S3 under the workspace prefix) copies
a starter template into S3 first, then restores it like any workspace.
"""

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codepilot_contracts import layout

from ..starters import starter_dir
from .ignore import IGNORE_FILE, IgnoreRules, load_ignore_rules
from .localtree import has_symlink_component, local_path, scan_local
from .manifest import Entry, Manifest, load_manifest, save_manifest, state_dir
from .pack import (
    MIN_FILES_FOR_PACK,
    PACK,
    PACK_MANIFEST,
    manifest_entries,
    parse_manifest,
    unpack_wanted,
    wanted_from_pack,
)
from .s3 import RemoteObject, S3Error, S3Store, file_etag
from .snapshots import SnapshotError, plan_snapshots, restore_snapshot

# (files done, files in all, bytes done, bytes in all); snapshots count as bytes only.
ProgressCallback = Callable[[int, int, int, int], None]
DEFAULT_MAX_UNPACKED = 8 * 1024**3


@dataclass
class RestorePlan:
    download: list[str] = field(default_factory=list)
    # Local and remote may hold the same bytes: compare by content before downloading.
    verify: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Changed locally since the last sync while S3 kept the old version: push, not restore.
    local_changes: list[str] = field(default_factory=list)
    # Deleted from S3 since the last sync and untouched locally since.
    remove_local: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.download) + len(self.verify) + len(self.unchanged) + len(self.local_changes)


def plan_restore(
    remote: dict[str, RemoteObject],
    local_files: dict[str, os.stat_result],
    manifest: Manifest,
    rules: IgnoreRules | None = None,
) -> RestorePlan:
    """What to do for each path; ``remote`` is keyed by workspace-relative path."""
    plan = RestorePlan()
    for relpath, remote_object in sorted(remote.items()):
        if layout.is_dir_keep(relpath):
            plan.folders.append(layout.dir_of_keep(relpath))
            continue
        info = local_files.get(relpath)
        entry = manifest.get(relpath)
        if info is None:
            plan.download.append(relpath)
        elif entry is not None and entry.matches_stat(info):
            # Local copy untouched since the last sync: S3 decides.
            if entry.etag == remote_object.etag:
                plan.unchanged.append(relpath)
            else:
                plan.download.append(relpath)
        elif entry is not None and entry.etag == remote_object.etag:
            plan.local_changes.append(relpath)
        elif info.st_size != remote_object.size:
            plan.download.append(relpath)
        else:
            plan.verify.append(relpath)
    for relpath, info in local_files.items():
        if relpath in remote or (rules is not None and rules.ignored(relpath)):
            continue
        entry = manifest.get(relpath)
        if entry is not None and entry.matches_stat(info):
            plan.remove_local.append(relpath)
    return plan


@dataclass
class RestoreResult:
    total: int = 0
    downloaded: int = 0
    unchanged: int = 0
    removed: int = 0
    local_changes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    template: str = ""
    seconds: float = 0.0
    bytes: int = 0
    from_pack: int = 0
    # Dependency snapshots by folder: "restored", or why not.
    snapshots: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "total": self.total,
            "downloaded": self.downloaded,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "local_changes": len(self.local_changes),
            "failed": self.failed,
            "template": self.template,
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
            "from_pack": self.from_pack,
            "snapshots": self.snapshots,
        }


def _parts_of(etag: str) -> int:
    _, _, parts = etag.partition("-")
    return int(parts) if parts.isdigit() else 1


def _prepare_target(root: Path, relpath: str) -> Path:
    """Make the parent folders of ``relpath``; refuse to write through a symlink."""
    if layout.safe_object_relpath(relpath) is None or has_symlink_component(root, relpath):
        raise ValueError(f"refusing to write {relpath!r}: it would leave the workspace")
    target = local_path(root, relpath)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise ValueError(f"{relpath!r} is a folder locally but a file in S3")
    return target


async def restore_workspace(
    store: S3Store,
    key_prefix: str,
    root: Path,
    template: str = "",
    templates_prefix: str = "",
    concurrency: int = 64,
    on_progress: ProgressCallback | None = None,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED,
) -> RestoreResult:
    """Download what is missing or changed under ``key_prefix`` into ``root``.

    Raises ``S3Error`` when S3 cannot be listed; failures of single files are in
    ``RestoreResult.failed`` (nothing local is lost: downloads replace files atomically).
    """
    started = time.monotonic()
    root = Path(root)
    result = RestoreResult()
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    scratch = state_dir(root) / "tmp"
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    location = f"s3://{store.bucket}/{key_prefix}"

    remote_keys = await store.list(key_prefix)
    if not remote_keys:
        result.template = await seed_new_workspace(
            store, key_prefix, root, template, templates_prefix
        )
        remote_keys = await store.list(key_prefix)

    # The ignore file itself may have just arrived from S3; read it after a first fetch.
    rules_key = layout.key_for(key_prefix, IGNORE_FILE)
    if rules_key in remote_keys and not local_path(root, IGNORE_FILE).exists():
        await store.download_file(rules_key, local_path(root, IGNORE_FILE), scratch)
    rules = await asyncio.to_thread(load_ignore_rules, root)

    remote = {}
    for key, remote_object in remote_keys.items():
        relpath = layout.relpath_for(key_prefix, key)
        if relpath == layout.DIR_KEEP:
            continue
        if layout.safe_object_relpath(relpath) is None:
            result.failed[key] = "object key would leave the workspace; skipped"
            continue
        # Ignored paths are local-only: whatever S3 holds there is not restored.
        if not layout.is_dir_keep(relpath) and rules.ignored(relpath):
            continue
        remote[relpath] = remote_object

    manifest, tree, (snapshots, skipped) = await asyncio.gather(
        asyncio.to_thread(load_manifest, root, location),
        asyncio.to_thread(scan_local, root, rules),
        plan_snapshots(store, key_prefix, root, remote_keys, rules),
    )
    result.snapshots.update(skipped)
    plan = plan_restore(remote, tree.files, manifest, rules)
    result.total = plan.total
    result.local_changes = plan.local_changes
    done = len(plan.unchanged) + len(plan.local_changes)
    result.unchanged = len(plan.unchanged)
    bytes_total = sum(remote[relpath].size for relpath in (*plan.download, *plan.verify))
    bytes_total += sum(snapshot.size for snapshot in snapshots)
    bytes_done = 0

    def report():
        if on_progress:
            on_progress(done, result.total, bytes_done, bytes_total)

    report()

    def settled(size: int = 0, files: int = 1):
        nonlocal done, bytes_done
        done += files
        bytes_done += size
        report()

    slots = asyncio.Semaphore(concurrency)
    # Folders for all downloads in one worker-thread call, not one per file.
    prepared, refused = await asyncio.to_thread(_prepare_targets, root, plan.download)
    result.failed.update(refused)
    plan.download = [relpath for relpath in plan.download if relpath in prepared]
    done += len(refused)

    async def fetch(relpath: str):
        async with slots:
            try:
                target = prepared.get(relpath)
                if target is None:
                    target = await asyncio.to_thread(_prepare_target, root, relpath)
                etag, info = await store.download_file(
                    layout.key_for(key_prefix, relpath), target, scratch
                )
                manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, etag))
                result.downloaded += 1
                result.bytes += info.st_size
            except (S3Error, OSError, ValueError) as error:
                result.failed[relpath] = str(error)
            settled(remote[relpath].size)

    async def verify(relpath: str):
        remote_object = remote[relpath]
        path = local_path(root, relpath)
        try:
            local_etag = await asyncio.to_thread(
                file_etag, path, store.part_size, _parts_of(remote_object.etag)
            )
            info = await asyncio.to_thread(os.stat, path)
        except OSError:
            local_etag, info = None, None
        if local_etag == remote_object.etag and info is not None:
            manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, local_etag))
            result.unchanged += 1
            settled(remote_object.size)
        else:
            await fetch(relpath)

    for relpath in plan.unchanged:
        info = tree.files[relpath]
        manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, remote[relpath].etag))

    async def unpack(snapshot):
        # The archive is one large download: it takes a slot like any file.
        async with slots:
            try:
                await restore_snapshot(store, root, snapshot, scratch, max_unpacked_bytes)
                result.snapshots[snapshot.folder] = "restored"
                result.bytes += snapshot.size
            except SnapshotError as error:
                result.snapshots[snapshot.folder] = str(error)
            settled(snapshot.size, files=0)

    from_pack = await _choose_from_pack(store, key_prefix, remote_keys, remote, plan.download)

    async def fetch_pack():
        pack_key = layout.key_for(key_prefix, PACK)
        download = scratch / f"pack-{uuid.uuid4().hex}.tar"
        written = {}
        async with slots:
            try:
                await store.download_file(pack_key, download, scratch)
                wanted = {relpath: prepared[relpath] for relpath in from_pack}
                etags = {relpath: remote[relpath].etag for relpath in from_pack}
                written = await asyncio.to_thread(unpack_wanted, download, wanted, etags, scratch)
            except (S3Error, OSError):
                pass  # every file then comes one by one
            finally:
                await asyncio.to_thread(download.unlink, True)
        for relpath, entry in manifest_entries(written).items():
            manifest.set(relpath, entry)
        result.from_pack = len(written)
        result.downloaded += len(written)
        packed_bytes = sum(remote[relpath].size for relpath in written)
        result.bytes += packed_bytes
        settled(packed_bytes, files=len(written))
        await asyncio.gather(*(fetch(relpath) for relpath in from_pack if relpath not in written))

    # Snapshots and the pack first: the largest downloads start while small files stream in.
    await asyncio.gather(
        *(unpack(snapshot) for snapshot in snapshots),
        *([fetch_pack()] if from_pack else []),
        *(fetch(relpath) for relpath in plan.download if relpath not in from_pack),
        *(verify(relpath) for relpath in plan.verify),
    )

    for folder in plan.folders:
        keep = layout.dir_keep_key("", folder)
        try:
            await asyncio.to_thread(_make_folder, root, folder)
            manifest.set(keep, Entry(0, 0, remote[keep].etag))
        except (OSError, ValueError) as error:
            result.failed[keep] = str(error)
    for relpath in plan.remove_local:
        try:
            await asyncio.to_thread(os.unlink, local_path(root, relpath))
            manifest.discard(relpath)
            result.removed += 1
        except OSError as error:
            result.failed[relpath] = str(error)
    for relpath in list(manifest.entries):
        if relpath not in remote and relpath not in plan.local_changes:
            manifest.discard(relpath)
    await asyncio.to_thread(save_manifest, root, manifest)
    await asyncio.to_thread(shutil.rmtree, scratch, True)
    result.seconds = time.monotonic() - started
    return result


async def _choose_from_pack(
    store: S3Store,
    key_prefix: str,
    listing: dict[str, RemoteObject],
    remote: dict[str, RemoteObject],
    download: list[str],
) -> set[str]:
    """The files to take from the pack: when it holds enough of what is to download."""
    pack = listing.get(layout.key_for(key_prefix, PACK))
    manifest_key = layout.key_for(key_prefix, PACK_MANIFEST)
    if pack is None or manifest_key not in listing or len(download) < MIN_FILES_FOR_PACK:
        return set()
    try:
        pack_files = parse_manifest(await store.read_bytes(manifest_key))
    except S3Error:
        return set()
    chosen = wanted_from_pack(pack_files, remote, download)
    # Fetching the whole pack for a few of its files would cost more than it saves.
    if len(chosen) < MIN_FILES_FOR_PACK or 2 * sum(remote[p].size for p in chosen) < pack.size:
        return set()
    return chosen


def _prepare_targets(root: Path, relpaths: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    prepared, refused = {}, {}
    for relpath in relpaths:
        try:
            prepared[relpath] = _prepare_target(root, relpath)
        except (OSError, ValueError) as error:
            refused[relpath] = str(error)
    return prepared, refused


def _make_folder(root: Path, folder: str) -> None:
    if not folder:
        return
    if layout.safe_object_relpath(folder) is None or has_symlink_component(root, folder):
        raise ValueError(f"refusing to make folder {folder!r}: it would leave the workspace")
    local_path(root, folder).mkdir(parents=True, exist_ok=True)


# --- first start: starter templates --------------------------------------------------------


async def seed_new_workspace(
    store: S3Store, key_prefix: str, root: Path, template: str, templates_prefix: str
) -> str:
    """Fill an empty workspace prefix: the template when one is chosen, and the root marker.

    The template comes from ``<templates_prefix><template>/`` in S3 when that exists,
    else from the starter packaged with Code Pilot. Returns the template used, or "".
    A local workspace that already has files is pushed by the server instead.
    """
    used = ""
    local_tree = await asyncio.to_thread(scan_local, root, IgnoreRules())
    if template and not local_tree.files:
        source_prefix = layout.template_prefix(templates_prefix, template)
        objects = await store.list(source_prefix)
        if objects:
            await asyncio.gather(
                *(
                    store.copy(key, key_prefix + layout.relpath_for(source_prefix, key))
                    for key in objects
                    if layout.relpath_for(source_prefix, key) != layout.DIR_KEEP
                )
            )
            used = template
        else:
            starter = starter_dir(template)
            if starter is None:
                raise ValueError(f"no starter template named {template!r}")
            await upload_folder(store, starter, key_prefix)
            used = template
    await store.put_bytes(layout.dir_keep_key(key_prefix, ""), b"")
    return used


async def upload_folder(store: S3Store, folder: Path, key_prefix: str) -> int:
    """Upload every regular file below ``folder`` (ignore rules apply); returns the count."""
    tree = await asyncio.to_thread(lambda: scan_local(folder, load_ignore_rules(folder)))
    await asyncio.gather(
        *(
            store.upload_file(folder / relpath, key_prefix + relpath, info.st_size)
            for relpath, info in tree.files.items()
        )
    )
    return len(tree.files)
