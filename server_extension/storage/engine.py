"""Mirroring one local workspace to its S3 prefix while a server runs.

``WorkspaceSync`` is shared by the contents manager (which awaits each push, so a save
is acknowledged only once S3 holds it) and the watcher (which schedules paths that
terminal processes touched). Pushes of the same path are serialised, so S3 always ends
with the file's latest local state; scheduled paths that fail stay pending and are
retried with backoff until S3 answers again.
"""

import asyncio
import logging
import os
import stat
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from . import layout
from .ignore import STATE_DIR, load_ignore_rules
from .localtree import has_symlink_component, local_path, scan_local
from .manifest import Entry, load_manifest, save_manifest, write_manifest_text
from .s3 import S3Error, S3Store


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class SyncStatus:
    """What ``GET <server>/codepilot/api/sync`` reports."""

    state: str = "starting"
    last_success: str | None = None
    last_error: dict | None = None
    unflushed: list[str] = field(default_factory=list)


class WorkspaceSync:
    """Keeps ``s3://<bucket>/<key_prefix>`` equal to the workspace folder ``root``."""

    def __init__(
        self,
        root: Path,
        store: S3Store,
        key_prefix: str,
        log: logging.Logger | None = None,
        concurrency: int = 16,
        max_backoff: float = 5.0,
    ):
        self.root = Path(os.path.realpath(root))
        self.store = store
        self.key_prefix = key_prefix
        self.log = log or logging.getLogger(__name__)
        self.location = f"s3://{store.bucket}/{key_prefix}"
        self.manifest = load_manifest(self.root, self.location)
        self.rules = load_ignore_rules(self.root)
        self.status = SyncStatus()
        self.max_backoff = max_backoff
        self._concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Paths waiting for a push (insertion-ordered); the error of their last attempt.
        self._queue: dict[str, str | None] = {}
        self._in_flight: set[str] = set()
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # --- single paths -------------------------------------------------------------------

    def key(self, relpath: str) -> str:
        return layout.key_for(self.key_prefix, relpath)

    def _lock(self, relpath: str) -> asyncio.Lock:
        lock = self._locks.get(relpath)
        if lock is None:
            lock = self._locks[relpath] = asyncio.Lock()
        return lock

    def _succeeded(self) -> None:
        self.status.last_success = _now()

    def mark_failed(self, relpaths: list[str], error: Exception) -> None:
        """Record a failed push: the status shows it and the paths stay pending."""
        self.status.last_error = {"message": str(error), "path": relpaths[-1], "at": _now()}
        self.schedule(relpaths, error)

    def reload_rules(self) -> None:
        self.rules = load_ignore_rules(self.root)

    def ignored(self, relpath: str, is_dir: bool = False) -> bool:
        return (
            relpath == STATE_DIR
            or relpath.startswith(STATE_DIR + "/")
            or (self.rules.ignored(relpath, is_dir))
        )

    async def push_path(self, relpath: str, force: bool = False, list_remote: bool = False):
        """Make S3 hold what the workspace holds at ``relpath`` now; raises ``S3Error``.

        A file is uploaded unless its manifest entry shows it unchanged (``force``
        uploads anyway); a folder gets its ``.s3keep`` and, when new, its contents; a
        missing path is deleted from S3 with everything below it (``list_remote`` also
        finds objects the manifest does not know). Symlinks are never followed.
        """
        async with self._lock(relpath):
            path = local_path(self.root, relpath)
            try:
                info = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                info = None
            if (
                info is not None
                and not stat.S_ISLNK(info.st_mode)
                and has_symlink_component(self.root, relpath)
            ):
                return  # below a symlinked folder, so possibly outside the workspace
            if info is None or stat.S_ISLNK(info.st_mode):
                await self._delete_remote(relpath, list_remote)
                return
            if stat.S_ISDIR(info.st_mode):
                if self.ignored(relpath, is_dir=True):
                    return
                keep = layout.dir_keep_key("", relpath)
                if relpath and self.manifest.get(keep) is None:
                    etag = await self.store.put_bytes(self.key(keep), b"")
                    self.manifest.set(keep, Entry(0, 0, etag))
                    self._succeeded()
                    new_folder = True
                else:
                    new_folder = False
            elif stat.S_ISREG(info.st_mode):
                if self.ignored(relpath):
                    return
                entry = self.manifest.get(relpath)
                if force or entry is None or not entry.matches_stat(info):
                    etag = await self.store.upload_file(path, self.key(relpath), info.st_size)
                    self.manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, etag))
                    self._succeeded()
                return
            else:
                return  # sockets, fifos, devices: nothing to store
        if new_folder:
            # A folder moved in from elsewhere brings contents no event announced.
            await self.push_tree(relpath)

    async def _delete_remote(self, relpath: str, list_remote: bool) -> None:
        keys = set(self.manifest.under(relpath)) if relpath else set()
        if relpath and self.manifest.get(relpath) is not None:
            keys.add(relpath)
        if list_remote and relpath:
            keys.add(relpath)
            listed = await self.store.list(self.key(relpath) + "/")
            keys.update(layout.relpath_for(self.key_prefix, key) for key in listed)
        if not keys:
            return
        await self.store.delete(self.key(key) for key in keys)
        for key in keys:
            self.manifest.discard(key)
        self._succeeded()

    async def push_tree(self, relpath: str = "", force: bool = False) -> dict[str, S3Error]:
        """Push every file and folder below ``relpath`` and delete what is gone locally.

        Returns the paths that failed, with their errors (they stay scheduled).
        """
        tree = await asyncio.to_thread(scan_local, self.root, self.rules, relpath)
        gone_files, gone_folders = self._gone_from(tree, relpath)
        paths = [*sorted(tree.dirs), *tree.files, *gone_files, *gone_folders]
        return await self._push_many(paths, force)

    def _gone_from(self, tree, relpath: str = "") -> tuple[list[str], list[str]]:
        """(files, folders) the manifest holds below ``relpath`` that ``tree`` no longer has."""
        synced = self.manifest.under(relpath) if relpath else list(self.manifest.entries)
        files = [path for path in synced if not layout.is_dir_keep(path) and path not in tree.files]
        folders = [
            layout.dir_of_keep(path)
            for path in synced
            if layout.is_dir_keep(path) and layout.dir_of_keep(path) not in tree.dirs
        ]
        return files, folders

    def unsynced_files(self) -> list[str]:
        """Files on disk that S3 does not hold as they are, by the manifest (no S3 call)."""
        tree = scan_local(self.root, self.rules)
        changed = [
            relpath
            for relpath, info in tree.files.items()
            if not ((entry := self.manifest.get(relpath)) and entry.matches_stat(info))
        ]
        gone_files, _ = self._gone_from(tree)
        return sorted([*changed, *gone_files])

    async def _push_many(self, paths, force: bool = False) -> dict[str, S3Error]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        failures: dict[str, S3Error] = {}

        async def push(relpath: str):
            async with self._slots:
                self._in_flight.add(relpath)
                try:
                    await self.push_path(relpath, force=force)
                except S3Error as error:
                    failures[relpath] = error
                    self.mark_failed([relpath], error)
                finally:
                    self._in_flight.discard(relpath)

        await asyncio.gather(*(push(relpath) for relpath in dict.fromkeys(paths)))
        return failures

    async def rename(self, old: str, new: str) -> None:
        """After a local rename: copy the objects server-side, push the rest, delete old."""
        listed = await self.store.list(self.key(old) + "/")
        old_keys = {layout.relpath_for(self.key_prefix, key) for key in listed}
        if self.manifest.get(old) is not None:
            old_keys.add(old)

        async def move(relpath: str):
            target = new + relpath[len(old) :]
            async with self._lock(target):
                try:
                    etag = await self.store.copy(self.key(relpath), self.key(target))
                except S3Error:
                    return  # gone meanwhile: push_tree uploads it from disk
                entry = self.manifest.get(relpath)
                if entry is not None:
                    self.manifest.set(target, Entry(entry.size, entry.mtime_ns, etag))

        await asyncio.gather(*(move(relpath) for relpath in old_keys))
        if await asyncio.to_thread(os.path.isdir, local_path(self.root, new)):
            failures = await self.push_tree(new)
        else:
            failures = {}
            await self.push_path(new)
        if failures:
            raise next(iter(failures.values()))
        async with self._lock(old):
            await self._delete_remote(old, list_remote=True)

    # --- scheduled pushes (watcher) and retries ------------------------------------------

    def schedule(self, relpaths, error: Exception | None = None) -> None:
        for relpath in relpaths:
            self._queue[relpath] = str(error) if error else self._queue.get(relpath)
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def pending(self) -> list[str]:
        return list(dict.fromkeys([*self._queue, *self._in_flight]))

    async def _drain_queue(self) -> dict[str, S3Error]:
        batch = list(self._queue)
        self._queue.clear()
        return await self._push_many(batch)

    async def _worker(self) -> None:
        backoff = 0.0
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._stopping:
                break
            self.status.state = "syncing"
            failures = await self._drain_queue()
            if failures:
                backoff = min(max(backoff * 2, 0.5), self.max_backoff)
                self.status.state = "retrying"
                self.log.warning(
                    "S3 sync: %d paths not synced, retrying in %.1fs: %s",
                    len(failures),
                    backoff,
                    next(iter(failures.values())),
                )
                await asyncio.sleep(backoff)
                self._wakeup.set()
            else:
                backoff = 0.0
                if not self._queue:
                    self.status.state = "idle"

    async def _manifest_saver(self, interval: float = 1.0) -> None:
        while not self._stopping:
            await asyncio.sleep(interval)
            await self.save_manifest()

    async def save_manifest(self) -> None:
        if self.manifest.dirty:
            text = self.manifest.to_json()
            self.manifest.dirty = False
            try:
                await asyncio.to_thread(write_manifest_text, self.root, text)
            except OSError as error:
                self.manifest.dirty = True
                self.log.warning("S3 sync: could not write the manifest: %s", error)

    def start(self) -> None:
        """Start the retry worker and the manifest writer, then push what changed offline."""
        self._wakeup = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._worker(), name="codepilot-sync-worker"),
            asyncio.create_task(self._manifest_saver(), name="codepilot-sync-manifest"),
            asyncio.create_task(self._reconcile(), name="codepilot-sync-reconcile"),
        ]

    async def _reconcile(self) -> None:
        """Push local changes made while no server watched (a crash, a stopped pod)."""
        self.status.state = "reconciling"
        failures = await self.push_tree("")
        if failures:
            self.log.warning("S3 sync: %d paths pending after startup", len(failures))
        elif not self._queue:
            self.status.state = "idle"
        await self.save_manifest()

    async def flush(self, time_limit: float) -> list[str]:
        """Push everything pending within ``time_limit`` seconds; returns what is left."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._queue.clear()  # push_tree below covers every pending path
        left: list[str] = []
        try:
            failures = await asyncio.wait_for(self.push_tree(""), time_limit)
            left = sorted(failures)
        except TimeoutError:
            # The cancelled pushes took their paths out of `pending`: name what is left
            # from the disk and the manifest instead.
            left = self.pending or await asyncio.to_thread(self.unsynced_files)
        self.status.unflushed = left
        self.status.state = "stopped"
        try:
            await asyncio.to_thread(save_manifest, self.root, self.manifest)
        except OSError as error:
            self.log.warning("S3 sync: could not write the manifest: %s", error)
        await self.store.close()
        return left

    def status_model(self) -> dict:
        pending = self.pending
        return {
            "storage": "sync",
            "location": self.location,
            "state": self.status.state,
            "pending": len(pending),
            "pending_paths": pending[:50],
            "last_success": self.status.last_success,
            "last_error": self.status.last_error,
            "synced_objects": len(self.manifest.entries),
            "unflushed": self.status.unflushed,
        }
