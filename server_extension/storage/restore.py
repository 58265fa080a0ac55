"""Bring a local workspace up to date with its S3 copy: only what is missing or changed.

``restore_workspace`` compares both sides (``plan.compare_workspace``), gives a new
workspace its starter (``seed``), picks the dependency snapshots that still fit
(``snapshots``), and has a ``Restore`` carry the plan out: small files from the
small-files pack in one GET, the rest one GET each, snapshots unpacked alongside, all
concurrently. Downloads replace files atomically, so a failure loses nothing local.
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

from .ignore import IGNORE_FILE
from .localtree import has_symlink_component, local_path
from .location import WorkspaceLocation
from .manifest import Entry, Manifest, record_conflicts, save_manifest, state_dir
from .pack import (
    MIN_FILES_FOR_PACK,
    PACK,
    manifest_entries,
    pack_index_key,
    parse_pack_index,
    tar_footprint,
    unpack_wanted,
    wanted_from_pack,
)
from .plan import (
    WorkspaceView,
    compare_workspace,
    conflict_relpath,
    empty_prefix_refusal,
    ignore_file_missing,
)
from .s3 import S3Error, S3Store, file_etag
from .seed import seed_prefix
from .snapshots import SnapshotError, SnapshotRestore, plan_snapshots, restore_snapshot

# (files done, files in all, bytes done, bytes in all); snapshots count as bytes only.
ProgressCallback = Callable[[int, int, int, int], None]
DEFAULT_MAX_UNPACKED = 8 * 1024**3
# What a restore does when S3 holds nothing where the manifest says the workspace was
# synced: refuse (the default), or keep the local files as new ones, for the server to push.
EMPTY_PREFIX_CHOICES = ("refuse", "push")


class RestoreRefused(ValueError):
    """A restore that would delete local files without evidence; nothing was changed."""


@dataclass
class RestoreResult:
    total: int = 0
    downloaded: int = 0
    unchanged: int = 0
    removed: int = 0
    local_changes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # Objects no file of this workspace can hold (a key this layout never writes, a
    # folder in the way): reported, left alone, never a reason to fail.
    skipped: dict[str, str] = field(default_factory=dict)
    # Files both sides changed: S3's version took the name, the local one was kept beside.
    conflicts: dict[str, str] = field(default_factory=dict)
    starter: str = ""
    seconds: float = 0.0
    bytes: int = 0
    from_pack: int = 0
    # Dependency snapshots by folder: "restored", or why not.
    snapshots: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """The restore command's final record (``"event": "done"`` is added by the CLI)."""
        return {
            "total": self.total,
            "downloaded": self.downloaded,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "local_changes": len(self.local_changes),
            "failed": self.failed,
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "starter": self.starter,
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
            "from_pack": self.from_pack,
            "snapshots": self.snapshots,
        }


async def restore_workspace(
    store: S3Store,
    location: WorkspaceLocation,
    root: Path,
    starter: str = "",
    concurrency: int = 64,
    on_progress: ProgressCallback | None = None,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED,
    snapshots: bool = True,
    empty_prefix: str = EMPTY_PREFIX_CHOICES[0],
) -> RestoreResult:
    """Download what is missing or changed in the workspace at ``location`` into ``root``;
    ``store`` is an open client of its bucket.

    Raises ``S3Error`` when S3 cannot be listed; failures of single files are in
    ``RestoreResult.failed``, objects no local file can hold in ``skipped``.
    ``snapshots=False`` restores files only. Raises ``RestoreRefused`` when S3 holds
    nothing where the manifest says the workspace was synced, unless ``empty_prefix`` is
    ``"push"``: then the local files are kept as new ones.
    """
    if empty_prefix not in EMPTY_PREFIX_CHOICES:
        raise ValueError(f"empty_prefix {empty_prefix!r}: expected one of {EMPTY_PREFIX_CHOICES}")
    started = time.monotonic()
    root = Path(root)
    scratch = state_dir(root) / "tmp"
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    view, starter_used = await _look(store, location, root, scratch, starter, empty_prefix)
    key_prefix = location.key_prefix
    chosen, skipped = ([], {})
    if snapshots:
        chosen, skipped = await plan_snapshots(store, key_prefix, root, view.listing, view.rules)
    restore = Restore(store, key_prefix, root, scratch, view, concurrency, on_progress)
    restore.result.starter = starter_used
    restore.result.snapshots.update(skipped)
    await restore.run(chosen, max_unpacked_bytes)
    await restore.finish()
    restore.result.seconds = time.monotonic() - started
    return restore.result


async def _look(
    store: S3Store,
    location: WorkspaceLocation,
    root: Path,
    scratch: Path,
    starter: str,
    empty_prefix: str,
) -> tuple[WorkspaceView, str]:
    """Compare both sides; first seed an empty prefix and fetch the ignore file if new."""
    key_prefix = location.key_prefix
    view = await compare_workspace(store, key_prefix, root)
    used = ""
    refusal = empty_prefix_refusal(view, store.endpoint)
    if refusal is not None:
        if empty_prefix != "push":
            raise RestoreRefused(refusal)
        # The local files become new ones: nothing is deleted, the server pushes them.
        forgotten = Manifest(view.location, endpoint=store.endpoint)
        await asyncio.to_thread(save_manifest, root, forgotten)
    if not view.listing:
        used = await seed_prefix(store, location, root, starter)
        view = await compare_workspace(store, key_prefix, root)
    if ignore_file_missing(key_prefix, root, view.listing):
        # Its rules decide what else is restored: fetch it, then look again.
        key = layout.key_for(key_prefix, IGNORE_FILE)
        await store.download_file(key, local_path(root, IGNORE_FILE), scratch)
        view = await compare_workspace(store, key_prefix, root, view.listing)
    return view, used


class Restore:
    """Carries out one restore plan; counts what is settled for progress reports."""

    def __init__(
        self,
        store: S3Store,
        key_prefix: str,
        root: Path,
        scratch: Path,
        view: WorkspaceView,
        concurrency: int,
        on_progress: ProgressCallback | None,
    ):
        self.store = store
        self.key_prefix = key_prefix
        self.root = root
        self.scratch = scratch
        self.view = view
        self.plan = view.plan
        self.manifest = view.manifest
        self.remote = view.remote
        self.on_progress = on_progress
        self.slots = asyncio.Semaphore(concurrency)
        self.prepared: dict[str, Path] = {}
        self.result = RestoreResult(skipped=dict(view.refused))
        self.done = 0
        self.bytes_done = 0
        self.bytes_total = 0

    # --- progress -------------------------------------------------------------------------

    def report(self) -> None:
        if self.on_progress:
            self.on_progress(self.done, self.result.total, self.bytes_done, self.bytes_total)

    def settled(self, size: int = 0, files: int = 1) -> None:
        self.done += files
        self.bytes_done += size
        self.report()

    # --- the plan -------------------------------------------------------------------------

    async def run(self, snapshots: list[SnapshotRestore], max_unpacked_bytes: int) -> None:
        plan, result = self.plan, self.result
        result.total = plan.total
        result.local_changes = plan.local_changes
        result.unchanged = len(plan.unchanged)
        self.done = len(plan.unchanged) + len(plan.local_changes)
        self.bytes_total = sum(
            self.remote[p].size for p in (*plan.download, *plan.verify, *plan.conflicts)
        )
        self.bytes_total += sum(snapshot.size for snapshot in snapshots)
        self.report()
        for relpath in plan.unchanged:
            info, etag = self.view.tree.files[relpath], self.remote[relpath].etag
            self.manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, etag))
        if plan.download:
            # Folders for all downloads in one worker-thread call, not one per file.
            self.prepared, refused = await asyncio.to_thread(
                _prepare_targets, self.root, plan.download
            )
            result.skipped.update(refused)
            self.done += len(refused)
        download = [relpath for relpath in plan.download if relpath in self.prepared]
        from_pack = await self._choose_from_pack(download)
        # Snapshots and the pack first: the largest downloads start while small files stream in.
        await asyncio.gather(
            *(self.unpack(snapshot, max_unpacked_bytes) for snapshot in snapshots),
            *([self.fetch_pack(from_pack)] if from_pack else []),
            *(self.fetch(relpath) for relpath in download if relpath not in from_pack),
            *(self.verify(relpath) for relpath in plan.verify),
            *(self.fetch(relpath, keep_local=True) for relpath in plan.conflicts),
        )

    async def fetch(self, relpath: str, keep_local: bool = False) -> None:
        """One object into its file; ``keep_local``: the local file stays, beside it."""
        async with self.slots:
            kept = None
            try:
                target = self.prepared.get(relpath)
                if target is None:
                    target = await asyncio.to_thread(_prepare_target, self.root, relpath)
                if keep_local:
                    kept = await asyncio.to_thread(_keep_beside, self.root, relpath)
                etag, info = await self.store.download_file(
                    layout.key_for(self.key_prefix, relpath), target, self.scratch
                )
                self.manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, etag))
                self.result.downloaded += 1
                self.result.bytes += info.st_size
                if kept is not None:
                    self.result.conflicts[relpath] = kept
            except ValueError as error:
                self.result.skipped[relpath] = str(error)
            except (S3Error, OSError) as error:
                self.result.failed[relpath] = str(error)
            if kept is not None and relpath not in self.result.conflicts:
                # The download failed: the file is still the local version.
                await asyncio.to_thread(local_path(self.root, kept).unlink, True)
        self.settled(self.remote[relpath].size)

    async def verify(self, relpath: str) -> None:
        """A local file the manifest does not know: keep it when its bytes are S3's."""
        remote_object = self.remote[relpath]
        path = local_path(self.root, relpath)
        try:
            local_etag, info = await asyncio.to_thread(
                _etag_and_stat, path, self.store.part_size, _parts_of(remote_object.etag)
            )
        except OSError:
            local_etag, info = None, None
        if local_etag != remote_object.etag or info is None:
            await self.fetch(relpath, keep_local=info is not None)
            return
        self.manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, local_etag))
        self.result.unchanged += 1
        self.settled(remote_object.size)

    async def unpack(self, snapshot: SnapshotRestore, max_unpacked_bytes: int) -> None:
        # The archive is one large download: it takes a slot like any file.
        async with self.slots:
            try:
                await restore_snapshot(
                    self.store, self.root, snapshot, self.scratch, max_unpacked_bytes
                )
                self.result.snapshots[snapshot.folder] = "restored"
                self.result.bytes += snapshot.size
            except SnapshotError as error:
                self.result.snapshots[snapshot.folder] = str(error)
        self.settled(snapshot.size, files=0)

    async def fetch_pack(self, from_pack: set[str]) -> None:
        """The pack in one GET; what it does not hold as listed comes one by one."""
        download = self.scratch / f"pack-{uuid.uuid4().hex}.tar"
        written = {}
        async with self.slots:
            try:
                await self.store.download_file(
                    layout.key_for(self.key_prefix, PACK), download, self.scratch
                )
                wanted = {relpath: self.prepared[relpath] for relpath in from_pack}
                etags = {relpath: self.remote[relpath].etag for relpath in from_pack}
                written = await asyncio.to_thread(
                    unpack_wanted, download, wanted, etags, self.scratch
                )
            except (S3Error, OSError):
                pass  # every file then comes one by one
            finally:
                await asyncio.to_thread(download.unlink, True)
        for relpath, entry in manifest_entries(written).items():
            self.manifest.set(relpath, entry)
        packed_bytes = sum(self.remote[relpath].size for relpath in written)
        self.result.from_pack = len(written)
        self.result.downloaded += len(written)
        self.result.bytes += packed_bytes
        self.settled(packed_bytes, files=len(written))
        await asyncio.gather(*(self.fetch(p) for p in sorted(from_pack) if p not in written))

    async def _choose_from_pack(self, download: list[str]) -> set[str]:
        """The files to take from the pack: when it holds enough of what is to download."""
        listing = self.view.listing
        pack = listing.get(layout.key_for(self.key_prefix, PACK))
        index_key = pack_index_key(self.key_prefix, listing)
        if pack is None or index_key is None or len(download) < MIN_FILES_FOR_PACK:
            return set()
        try:
            pack_files = parse_pack_index(await self.store.read_bytes(index_key))
        except S3Error:
            return set()
        chosen = wanted_from_pack(pack_files, self.remote, download)
        # Fetching the whole pack for a few of its files would cost more than it saves.
        # Measured in tar bytes: headers would otherwise rule out a pack of tiny files.
        chosen_bytes = sum(tar_footprint(self.remote[p].size, p) for p in chosen)
        if len(chosen) < MIN_FILES_FOR_PACK or 2 * chosen_bytes < pack.size:
            return set()
        return chosen

    # --- afterwards -----------------------------------------------------------------------

    async def finish(self) -> None:
        """Empty folders, files deleted in S3, the manifest; then the scratch folder goes."""
        plan, result, manifest = self.plan, self.result, self.manifest
        if plan.folders or plan.remove_local:
            made, removed, failed = await asyncio.to_thread(
                _apply_folders_and_removals, self.root, plan.folders, plan.remove_local
            )
            result.failed.update(failed)
            result.removed = len(removed)
            for folder in made:
                keep = layout.keep_relpath(folder)
                manifest.set(keep, Entry(0, 0, self.remote[keep].etag))
            for relpath in removed:
                manifest.discard(relpath)
        for relpath in list(manifest.entries):
            if relpath not in self.remote and relpath not in plan.local_changes:
                manifest.discard(relpath)
        if manifest.dirty:
            await asyncio.to_thread(save_manifest, self.root, manifest)
        if result.conflicts:
            await asyncio.to_thread(record_conflicts, self.root, result.conflicts)
        await asyncio.to_thread(shutil.rmtree, self.scratch, True)


def _parts_of(etag: str) -> int:
    _, _, parts = etag.partition("-")
    return int(parts) if parts.isdigit() else 1


def _etag_and_stat(path: Path, part_size: int, parts: int) -> tuple[str, os.stat_result]:
    return file_etag(path, part_size, parts), os.stat(path)


def _prepare_target(root: Path, relpath: str) -> Path:
    """Make the parent folders of ``relpath``; refuse to write through a symlink."""
    if layout.safe_object_relpath(relpath) is None or has_symlink_component(root, relpath):
        raise ValueError(f"refusing to write {relpath!r}: it would leave the workspace")
    target = local_path(root, relpath)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise ValueError(f"{relpath!r} is a folder locally but a file in S3")
    return target


def _keep_beside(root: Path, relpath: str) -> str:
    """A second name for the local file, ``<name>.conflict-<time>``, before the download
    replaces it (a hard link: no copy, the same bytes; a copy where links fail); returns
    that name."""
    now = time.time()
    source = local_path(root, relpath)
    for attempt in range(1, 100):
        kept = conflict_relpath(relpath, now, attempt)
        try:
            _link_or_copy(source, local_path(root, kept))
        except FileExistsError:
            continue
        return kept
    raise OSError(f"no free conflict name beside {relpath!r}")


def _link_or_copy(source: Path, target: Path) -> None:
    """A new name for ``source`` at ``target`` (never replacing one): a hard link, or a
    copy on a file system without them."""
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        with open(source, "rb") as original, open(target, "xb") as copy:
            shutil.copyfileobj(original, copy)


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


def _apply_folders_and_removals(
    root: Path, folders: list[str], remove: list[str]
) -> tuple[list[str], list[str], dict[str, str]]:
    """Make the empty folders S3 marks and delete files S3 deleted (blocking).

    Returns (folders made, files removed, failures by relpath or marker).
    """
    made, removed, failed = [], [], {}
    for folder in folders:
        try:
            _make_folder(root, folder)
            made.append(folder)
        except (OSError, ValueError) as error:
            failed[layout.keep_relpath(folder)] = str(error)
    for relpath in remove:
        try:
            os.unlink(local_path(root, relpath))
            removed.append(relpath)
        except OSError as error:
            failed[relpath] = str(error)
    return made, removed, failed
