"""Mirror what terminal processes do in the workspace: watchfiles events -> S3 pushes.

Events are debounced and batched by watchfiles (inotify on Linux, in its own thread);
each batch schedules its paths on the ``WorkspaceSync``, whose worker pushes them
concurrently and retries failures with backoff.

watchfiles cannot watch a tree that holds a name that is not UTF-8 (it stops with
"Unable to decode path"), nor one with more folders than the inotify watch limit; the
workspace is then rescanned every few seconds instead, and the sync status says the
watcher is degraded. Some writes raise no event at all (through a memory map, or
through another name of a hard-linked file): a slow sweep catches those by size and
mtime.
"""

import asyncio
import contextlib
import os
import threading

import watchfiles

from .engine import WorkspaceSync
from .ignore import IGNORE_FILE
from .localtree import relative_posix


def workspace_filter(sync: WorkspaceSync):
    """A watchfiles filter that drops ignored paths before they cost anything."""

    def accept(change: watchfiles.Change, path: str) -> bool:
        relpath = relative_posix(sync.root, path)
        if not relpath:
            return False
        if relpath == IGNORE_FILE:
            return True
        return not sync.ignored(relpath, is_dir=os.path.isdir(path))

    return accept


async def watch_workspace(
    sync: WorkspaceSync,
    stop_event: asyncio.Event,
    debounce_ms: int = 400,
    step_ms: int = 50,
    rescan_seconds: float = 2.0,
    sweep_seconds: float = 60.0,
) -> None:
    """Schedule every created, changed or deleted workspace path until ``stop_event``;
    rescan the workspace every ``rescan_seconds`` instead when watchfiles cannot watch it
    (a name that is not UTF-8, the inotify watch limit): degraded, never unmirrored.

    While events flow, a sweep every ``sweep_seconds`` (a stat per file) pushes what no
    event announces: writes through a memory map, the other names of a hard-linked file.
    """
    sweeper = asyncio.create_task(rescan_until(sync, stop_event, sweep_seconds, first=False))
    try:
        await watch_events(sync, stop_event, debounce_ms, step_ms)
        return
    except Exception as error:
        sync.watcher_degraded(f"{error}: rescanning every {rescan_seconds:g}s instead")
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    try:
        await rescan_until(sync, stop_event, rescan_seconds)
    except Exception as error:
        sync.watcher_failed(error)  # the status says so, not only the log
        raise


async def rescan_until(
    sync: WorkspaceSync, stop_event: asyncio.Event, seconds: float, first: bool = True
) -> None:
    """Push what changed (by size and mtime) every ``seconds`` until ``stop_event``;
    ``first``: at once, else after the first wait."""
    if not first:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), seconds)
    while not stop_event.is_set():
        await sync.push_tree("")  # failures stay scheduled for the retry worker
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), seconds)


async def watch_events(
    sync: WorkspaceSync,
    stop_event: asyncio.Event,
    debounce_ms: int = 400,
    step_ms: int = 50,
) -> None:
    """watchfiles' events until ``stop_event``; raises why it stopped, if it did.

    watchfiles' blocking iterator runs in a daemon thread of its own: its async iterator
    would use AnyIO worker threads, which are not daemons and keep the server's process
    alive after jupyter-server has shut down.
    """
    loop = asyncio.get_running_loop()
    stop_thread = threading.Event()
    finished = loop.create_future()
    # Its error, if it comes after the stop, is nobody's concern: no "never retrieved".
    finished.add_done_callback(lambda future: future.cancelled() or future.exception())

    def schedule(changes) -> None:
        relpaths = {relative_posix(sync.root, path) for _, path in changes}
        relpaths.discard(None)
        relpaths.discard("")
        if IGNORE_FILE in relpaths:
            sync.reload_rules()
        # Parents first: a folder that replaced a file (or the reverse) is settled first.
        sync.schedule(sorted(relpaths, key=lambda relpath: relpath.count("/")))

    def settle(error: BaseException | None) -> None:
        if finished.done():
            return
        if error is None:
            finished.set_result(None)
        else:
            finished.set_exception(error)

    def watch() -> None:
        error = None
        try:
            for changes in watchfiles.watch(
                sync.root,
                watch_filter=workspace_filter(sync),
                debounce=debounce_ms,
                step=step_ms,
                stop_event=stop_thread,
                recursive=True,
                ignore_permission_denied=True,
            ):
                loop.call_soon_threadsafe(schedule, changes)
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=watch, name="codepilot-watcher", daemon=True).start()
    stopped = asyncio.ensure_future(stop_event.wait())
    try:
        await asyncio.wait([stopped, finished], return_when=asyncio.FIRST_COMPLETED)
        if finished.done():
            finished.result()  # the watcher failed: raise why
    finally:
        stop_thread.set()
        stopped.cancel()
