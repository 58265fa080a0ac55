"""Mirroring one local workspace to its S3 prefix while a server runs.

``WorkspaceSync`` is shared by the contents manager (which awaits each push, so a save
is acknowledged only once S3 holds it) and the watcher (which schedules paths that
terminal processes touched). Pushes of the same path are serialised, so S3 always ends
with the file's latest local state; scheduled paths that fail stay pending and are
retried with backoff until S3 answers again.

Deadlock freedom: a slot of the concurrency semaphore is held only around one path's
own S3 calls (``_push_one``), which never take a slot. A folder's contents are pushed
after its slot is released, so no push waits on a slot its caller holds.

Folders: S3 holds a folder by the objects below it; one that holds nothing S3 stores
gets a ``.s3keep`` marker (s3contents' layout), also when its last file or subfolder
leaves it.
"""

import asyncio
import logging
import os
import stat
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from codepilot_contracts import layout

from .ignore import load_ignore_rules
from .localtree import has_symlink_component, local_path, scan_local
from .manifest import (
    Entry,
    ancestors,
    load_conflicts,
    load_manifest,
    save_manifest,
    write_manifest_text,
)
from .s3 import S3Error, S3Store


def _now() -> str:
    return _iso(time.time())


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _existing(root: Path, relpaths: list[str]) -> list[str]:
    return [path for path in relpaths if os.path.lexists(local_path(root, path))]


def _has_ancestor_in(relpath: str, folders: set[str]) -> bool:
    return not folders.isdisjoint(ancestors(relpath))


def _retried(failures: dict[str, Exception]) -> dict[str, Exception]:
    """The failures that stay pending: not those of paths no key can hold."""
    return {
        path: error for path, error in failures.items() if not isinstance(error, layout.LayoutError)
    }


# What a push of one path did; a folder asks for more: its contents.
PUSHED, FOLDER = "pushed", "folder"


@dataclass
class SyncStatus:
    """What ``GET <server>/codepilot/api/sync`` reports (see ``handlers.py``)."""

    state: str = "starting"
    last_success: str | None = None
    last_error: dict | None = None
    unflushed: list[str] = field(default_factory=list)
    # time.time() of the last push that finished, or of the moment nothing was pending.
    last_progress: float = field(default_factory=time.time)
    # Set while pending work has made no progress for ``stall_timeout`` seconds.
    stalled_since: float | None = None
    # Why the watcher stopped mirroring terminal changes, if it did.
    watcher_error: str | None = None
    # Why terminal changes are found by rescans instead of events, if they are.
    watcher_degraded: str | None = None
    # Files a restore found changed on both sides: name -> where the local one was kept.
    conflicts: dict[str, str] = field(default_factory=dict)
    # Paths no S3 key can hold (longer than S3 allows): on local disk only.
    unstorable: set[str] = field(default_factory=set)


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
        stall_timeout: float = 60.0,
    ):
        self.root = Path(os.path.realpath(root))
        self.store = store
        self.key_prefix = key_prefix
        self.log = log or logging.getLogger(__name__)
        self.location = f"s3://{store.bucket}/{key_prefix}"
        self.manifest = load_manifest(self.root, self.location, store.endpoint)
        self.rules = load_ignore_rules(self.root)
        self.status = SyncStatus(conflicts=load_conflicts(self.root))
        self.max_backoff = max_backoff
        self.stall_timeout = stall_timeout
        self._concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Paths waiting for a push (insertion-ordered); the error of their last attempt.
        self._queue: dict[str, str | None] = {}
        # A Counter: the same path may be pushed by a save and the watcher at once.
        self._in_flight: Counter[str] = Counter()
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        # One manifest write at a time: they share a scratch file, and the newest must land.
        self._manifest_lock = asyncio.Lock()

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

    def _progressed(self) -> None:
        self.status.last_progress = time.time()

    def mark_failed(self, relpaths: list[str], error: Exception) -> None:
        """Record a failed push: the status shows it and the paths stay pending."""
        self.status.last_error = {"message": str(error), "path": relpaths[-1], "at": _now()}
        self.schedule(relpaths, error)

    def unstorable(self, relpath: str, error: Exception) -> None:
        """A path S3 cannot hold: the status and the log say so (once); not retried."""
        self.status.last_error = {"message": str(error), "path": relpath, "at": _now()}
        if relpath not in self.status.unstorable:
            self.status.unstorable.add(relpath)
            self.log.warning("S3 sync: not stored in S3 (kept on local disk): %s", error)

    def reload_rules(self) -> None:
        self.rules = load_ignore_rules(self.root)

    def ignored(self, relpath: str, is_dir: bool = False) -> bool:
        return self.rules.ignored(relpath, is_dir)

    async def push_path(self, relpath: str, force: bool = False, list_remote: bool = False):
        """Make S3 hold what the workspace holds at ``relpath`` now; raises ``S3Error``.

        A file is uploaded unless its manifest entry shows it unchanged (``force``
        uploads anyway); a folder gets its contents, or its ``.s3keep`` when empty; a
        missing path is deleted from S3 with everything below it (``list_remote`` also
        finds objects the manifest does not know). Symlinks are never followed.
        Never call it while holding a slot: a folder's contents take slots.
        """
        if await self._push_one(relpath, force, list_remote) == FOLDER:
            # A folder moved in from elsewhere brings contents no event announced.
            failures = await self.push_tree(relpath)
            if failures:
                raise next(iter(failures.values()))

    async def _push_one(self, relpath: str, force: bool = False, list_remote: bool = False):
        """Push ``relpath`` itself (a folder: its marker if empty); ``FOLDER`` or ``PUSHED``.

        ``FOLDER``: a folder with contents, for the caller to push.
        """
        async with self._lock(relpath):
            outcome = await self._push_locked(relpath, force, list_remote)
        self._progressed()
        return outcome

    async def _push_locked(self, relpath: str, force: bool, list_remote: bool):
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
            return PUSHED  # below a symlinked folder, so possibly outside the workspace
        if info is None or stat.S_ISLNK(info.st_mode):
            await self._delete_remote(relpath, list_remote)
            return PUSHED
        if stat.S_ISDIR(info.st_mode):
            if self.ignored(relpath, is_dir=True):
                return PUSHED
            # A file of this name may have been replaced by this folder.
            await self._delete_keys([relpath] if self.manifest.get(relpath) else [], recheck=False)
            if not relpath:
                return PUSHED
            if self.manifest.has_folder(relpath) or await asyncio.to_thread(
                self._holds_something, path, relpath
            ):
                # Made or moved in, it may hold files that came before the watcher
                # watched it: they go up with it (unchanged ones cost a stat). Its
                # contents make it exist in S3: no marker, one request less per folder.
                return FOLDER
            keep = layout.keep_relpath(relpath)
            etag = await self.store.put_bytes(self.key(keep), b"")
            self.manifest.set(keep, Entry(0, 0, etag))
            self._succeeded()
            return PUSHED
        if stat.S_ISREG(info.st_mode) and not self.ignored(relpath):
            if self.manifest.has_folder(relpath):
                # A folder of this name was replaced by this file.
                await self._delete_keys(self.manifest.under(relpath), recheck=False)
            entry = self.manifest.get(relpath)
            if force or entry is None or not entry.matches_stat(info):
                try:
                    etag = await self.store.upload_file(path, self.key(relpath), info.st_size)
                except (FileNotFoundError, NotADirectoryError):
                    etag = None
                if etag is not None:
                    self.manifest.set(relpath, Entry(info.st_size, info.st_mtime_ns, etag))
                    self._succeeded()
                # Deleted, or moved away with its folder, while it went up: the folder's
                # delete, if it ran meanwhile, did not know this object yet. S3 must not
                # keep it. (Recorded first, so a delete from now on does know it.)
                if etag is None or not await asyncio.to_thread(os.path.lexists, path):
                    await self._delete_remote(relpath, list_remote=False)
        return PUSHED  # ignored files, sockets, fifos, devices: nothing to store

    def _holds_something(self, path: Path, relpath: str) -> bool:
        """Whether the folder holds what S3 stores: a file or a folder not ignored (blocking).

        Symlinks, sockets and ignored paths are not stored: a folder of only those needs
        its marker to exist in S3.
        """
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    child = f"{relpath}/{entry.name}"
                    if entry.is_dir(follow_symlinks=False):
                        if not self.ignored(child, is_dir=True):
                            return True
                    elif entry.is_file(follow_symlinks=False) and not self.ignored(child):
                        return True
        except (FileNotFoundError, NotADirectoryError):
            pass
        return False

    async def _delete_remote(self, relpath: str, list_remote: bool) -> None:
        keys = set(self.manifest.under(relpath)) if relpath else set()
        if relpath and self.manifest.get(relpath) is not None:
            keys.add(relpath)
        if list_remote and relpath:
            keys.add(relpath)
            decoded, foreign = self._decode_listing(await self.store.list(self.key(relpath) + "/"))
            keys.update(decoded)
            if foreign:  # below the deleted folder, though no name of ours
                await self.store.delete(foreign)
        await self._delete_keys(keys)

    def _decode_listing(self, listed) -> tuple[set[str], list[str]]:
        """(workspace paths, keys that decode to none) of listed keys."""
        decoded, foreign = set(), []
        for key in listed:
            try:
                decoded.add(layout.relpath_for(self.key_prefix, key))
            except layout.LayoutError:
                foreign.append(key)
        return decoded, foreign

    async def _delete_keys(self, relpaths, recheck: bool = True) -> None:
        """Delete objects (workspace-relative keys) and their entries.

        The lock held is the deleted folder's, not each object's: a path recreated
        meanwhile may have gone up before this delete landed, so with ``recheck``
        whatever exists on disk again is scheduled for another push.
        """
        keys = set(relpaths)
        if not keys:
            return
        await self.store.delete(self.key(key) for key in keys)
        for key in keys:
            self.manifest.discard(key)
        self._succeeded()
        if not recheck:
            return
        paths = [layout.dir_of_keep(key) if layout.is_dir_keep(key) else key for key in keys]
        # Folders left with nothing in S3 need their marker now, if they are still there.
        emptied = self._unstored_ancestors(paths)
        back = await asyncio.to_thread(_existing, self.root, [*paths, *emptied])
        if back:
            self.schedule(back)

    def _unstored_ancestors(self, relpaths) -> set[str]:
        """The folders above ``relpaths`` that nothing in S3 lies below (by the manifest)."""
        folders = {folder for relpath in relpaths for folder in ancestors(relpath)}
        return {folder for folder in folders if not self.manifest.has_folder(folder)}

    async def push_tree(self, relpath: str = "", force: bool = False) -> dict[str, Exception]:
        """Push every file and folder below ``relpath`` and delete what is gone locally.

        Returns the paths that failed, with their errors (they stay scheduled).
        """
        tree = await asyncio.to_thread(scan_local, self.root, self.rules, relpath)
        gone_files, gone_folders = self._gone_from(tree, relpath)
        folders = sorted(tree.dirs)  # parents first
        paths = [*folders, *tree.files, *gone_files, *gone_folders]
        failures = await self._push_many(paths, force, expand=False)
        # A folder left with nothing in S3 (its files were gone, and deleted just now, or
        # went meanwhile) is pushed once more: as the empty folder it is, it gets its marker.
        emptied = [
            folder
            for folder in folders
            if folder not in failures and not self.manifest.has_folder(folder)
        ]
        if emptied:
            failures.update(await self._push_many(emptied, force, expand=False))
        return failures

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

    async def _push_many(self, paths, force: bool = False, expand: bool = True):
        """Push ``paths`` concurrently; returns the failed ones with their errors.

        ``expand``: a path that turns out to be a folder also gets its contents
        pushed, once its slot is free again (``push_tree`` lists them already).
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._concurrency)
        failures: dict[str, Exception] = {}
        folders: list[str] = []

        async def push(relpath: str):
            self._work_arrives()
            self._in_flight[relpath] += 1
            try:
                async with self._slots:
                    outcome = await self._push_one(relpath, force=force)
                if outcome == FOLDER:
                    folders.append(relpath)
            except S3Error as error:
                failures[relpath] = error
                self.mark_failed([relpath], error)
            except layout.LayoutError as error:
                # No key can hold it (too long): retrying cannot help; it stays local.
                failures[relpath] = error
                self.unstorable(relpath, error)
            except OSError as error:
                # Unreadable locally (permissions, a file gone mid-way): S3 cannot help,
                # the next event on the path tries again.
                self.log.warning("S3 sync: could not read %s: %s", relpath, error)
            except Exception as error:
                # A bug on one path must not stop the others (nor a flush): retried.
                self.log.exception("S3 sync: pushing %r failed", relpath)
                failures[relpath] = S3Error(f"sync failed unexpectedly: {error!r}")
                self.mark_failed([relpath], failures[relpath])
            finally:
                self._in_flight[relpath] -= 1
                if self._in_flight[relpath] <= 0:
                    del self._in_flight[relpath]

        await asyncio.gather(*(push(relpath) for relpath in dict.fromkeys(paths)))
        if expand and folders:
            # No slot is held here, so the contents can take every slot there is. Each
            # folder's tree once: the outermost ones hold the others.
            chosen = set(folders)
            outermost = [folder for folder in chosen if not _has_ancestor_in(folder, chosen)]
            for tree_failures in await asyncio.gather(
                *(self.push_tree(folder, force) for folder in outermost)
            ):
                failures.update(tree_failures)
        return failures

    async def rename(self, old: str, new: str) -> None:
        """After a local rename: copy the objects server-side, push the rest, delete old."""
        old_keys, _ = self._decode_listing(await self.store.list(self.key(old) + "/"))
        if self.manifest.get(old) is not None:
            old_keys.add(old)

        async def move(relpath: str):
            target = new + relpath[len(old) :]
            async with self._lock(target):
                try:
                    etag = await self.store.copy(self.key(relpath), self.key(target))
                except (S3Error, layout.LayoutError):
                    return  # gone meanwhile (or no key holds it): push_tree decides
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
            self._work_arrives()
            self._queue[relpath] = str(error) if error else self._queue.get(relpath)
        if self._wakeup is not None:
            self._wakeup.set()

    def _work_arrives(self) -> None:
        # Time without progress counts from when something started to wait.
        if not self._queue and not self._in_flight:
            self._progressed()

    @property
    def pending(self) -> list[str]:
        return list(dict.fromkeys([*self._queue, *self._in_flight]))

    async def _drain_queue(self) -> dict[str, S3Error]:
        batch = list(self._queue)
        self._queue.clear()
        try:
            return await self._push_many(batch)
        except Exception as error:
            # A bug must not end mirroring for good: keep the batch and retry it.
            self.log.exception("S3 sync: pushing %d paths failed", len(batch))
            wrapped = S3Error(f"sync failed unexpectedly: {error!r}")
            self.mark_failed(batch, wrapped)
            return dict.fromkeys(batch, wrapped)

    async def _worker(self) -> None:
        backoff = 0.0
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._stopping:
                break
            self.status.state = "syncing"
            failures = _retried(await self._drain_queue())
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

    def check_progress(self, now: float | None = None) -> None:
        """Mark the sync stalled (and warn) when pending work made no progress lately."""
        now = time.time() if now is None else now
        pending = self.pending
        last = self.status.last_progress
        since = self.status.stalled_since
        if since is not None and (not pending or last > since):
            self.status.stalled_since = None
            self.log.info("S3 sync: progress again after %.1fs without", now - since)
        elif since is None and pending and now - last >= self.stall_timeout:
            self.status.stalled_since = now
            error = self.status.last_error
            self.log.warning(
                "S3 sync: no progress for %.1fs while %d paths are pending (%s%s); last error: %s",
                now - last,
                len(pending),
                ", ".join(pending[:5]),
                ", ..." if len(pending) > 5 else "",
                error["message"] if error else "none",
            )

    async def _stall_monitor(self) -> None:
        while not self._stopping:
            await asyncio.sleep(max(0.05, min(1.0, self.stall_timeout / 4)))
            self.check_progress()

    def watcher_failed(self, error: BaseException) -> None:
        """The watcher stopped: terminal changes are no longer mirrored until a restart."""
        self.status.watcher_error = str(error) or type(error).__name__
        self.log.error("S3 sync: the workspace watcher stopped: %s", self.status.watcher_error)

    def watcher_degraded(self, why: str) -> None:
        """Terminal changes are found by periodic rescans from now on, not by events."""
        self.status.watcher_degraded = why
        self.log.warning("S3 sync: the workspace watcher is degraded: %s", why)

    async def _manifest_saver(self, interval: float = 1.0) -> None:
        while not self._stopping:
            await asyncio.sleep(interval)
            await self.write_manifest()

    async def write_manifest(self) -> None:
        """Write the manifest file when entries changed since the last write."""
        async with self._manifest_lock:
            if not self.manifest.dirty:
                return
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
            asyncio.create_task(self._stall_monitor(), name="codepilot-sync-stall-monitor"),
        ]

    async def _reconcile(self) -> None:
        """Push local changes made while no server watched (a crash, a stopped pod)."""
        self.status.state = "reconciling"
        failures = _retried(await self.push_tree(""))
        if failures:
            self.log.warning("S3 sync: %d paths pending after startup", len(failures))
        elif not self._queue:
            self.status.state = "idle"
        await self.write_manifest()

    async def flush(self, time_limit: float) -> list[str]:
        """End mirroring and push everything pending within ``time_limit`` seconds;
        returns what is left. The store stays open until ``close``."""
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
            # from the disk and the manifest too.
            unsynced = await asyncio.to_thread(self.unsynced_files)
            left = sorted({*self.pending, *unsynced})
        self.status.unflushed = left
        return left

    async def close(self) -> None:
        """After ``flush``: the sync is stopped, the manifest saved, the store closed."""
        self.status.state = "stopped"
        try:
            async with self._manifest_lock:
                await asyncio.to_thread(save_manifest, self.root, self.manifest)
        except OSError as error:
            self.log.warning("S3 sync: could not write the manifest: %s", error)
        await self.store.close()

    @property
    def state(self) -> str:
        if self.status.watcher_error is not None and self.status.state != "stopped":
            return "error"
        if self.status.stalled_since is not None:
            return "stalled"
        return self.status.state

    def status_model(self) -> dict:
        """The JSON of ``GET <server>/codepilot/api/sync`` (fields in ``handlers.py``)."""
        pending = self.pending
        stalled_since = self.status.stalled_since
        return {
            "storage": "sync",
            "location": self.location,
            "state": self.state,
            "pending": len(pending),
            "pending_paths": pending[:50],
            "last_success": self.status.last_success,
            "last_error": self.status.last_error,
            "last_progress": _iso(self.status.last_progress),
            "stalled_since": _iso(stalled_since) if stalled_since is not None else None,
            "stall_timeout": self.stall_timeout,
            "watcher_error": self.status.watcher_error,
            "watcher_degraded": self.status.watcher_degraded,
            "conflicts": self.status.conflicts,
            "unstorable": sorted(self.status.unstorable)[:50],
            "synced_objects": len(self.manifest.entries),
            "unflushed": self.status.unflushed,
        }
