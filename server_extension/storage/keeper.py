"""A workspace kept in S3 while its server runs: its files, then its installed folders.

The sync engine (``engine.WorkspaceSync``) mirrors the files; ``snapshots.
DependencySnapshots`` saves the installed folders sync leaves out, and the small-files
pack. Neither knows the other: ``WorkspaceKeeper`` starts both and puts the files first,
while the server runs (a snapshot waits while files are pending) and at stop (the
snapshots get what is left of the flush time once every file is in S3).
"""

import asyncio
import time

from .engine import WorkspaceSync
from .snapshots import DependencySnapshots


def dependency_snapshots(sync: WorkspaceSync, **config) -> DependencySnapshots:
    """The snapshots of the workspace that ``sync`` mirrors, into the same store and prefix;
    ``config``: the traitlets ``DependencySnapshots`` takes (``parent``, settings)."""
    return DependencySnapshots(sync.root, sync.store, sync.key_prefix, sync.manifest, **config)


class WorkspaceKeeper:
    """Runs a workspace's sync and, when given, its dependency snapshots; files first."""

    def __init__(self, sync: WorkspaceSync, snapshots: DependencySnapshots | None = None):
        self.sync = sync
        self.snapshots = snapshots
        self._snapshot_loop: asyncio.Task | None = None

    def start(self) -> None:
        self.sync.start()
        if self.snapshots is not None:
            self._snapshot_loop = asyncio.create_task(
                self.snapshots.run(lambda: bool(self.sync.pending)),
                name="codepilot-sync-snapshots",
            )

    async def stop(self, time_limit: float) -> list[str]:
        """Push what is pending within ``time_limit`` seconds, then take the snapshots that
        are due with what is left of it; returns the files left unpushed (with those no S3
        key can hold)."""
        started = time.monotonic()
        if self._snapshot_loop is not None:
            self._snapshot_loop.cancel()
            await asyncio.gather(self._snapshot_loop, return_exceptions=True)
        left = await self.sync.flush(time_limit)
        # A path no S3 key can hold stays on this disk for good: it holds no snapshot back.
        pushable = [path for path in left if path not in self.sync.status.unstorable]
        try:
            if self.snapshots is not None and not pushable:
                await self.snapshots.at_stop(time_limit - (time.monotonic() - started))
        except Exception:  # a snapshot is a cache: its failure never costs the files' close
            self.snapshots.log.exception("Code Pilot: dependency snapshots at stop failed")
        finally:
            await self.sync.close()
        return left
