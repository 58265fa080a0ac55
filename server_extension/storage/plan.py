"""What differs between a local workspace and its S3 copy, and what each path needs.

``compare_workspace`` lists the S3 prefix while, in worker threads, it reads the ignore
rules and the manifest and walks the local folder: the listing is a network wait, the
rest is disk work, so they overlap. ``plan_restore`` then decides per path from the
listing, the local files' stat and the manifest. Restore carries the plan out; ``sync
status`` only reports it.
"""

import asyncio
import os
import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path

from codepilot_contracts import layout

from .ignore import IGNORE_FILE, IgnoreRules, load_ignore_rules
from .localtree import LocalTree, local_path, scan_local
from .manifest import Manifest, load_manifest
from .s3 import RemoteObject, S3Store


@dataclass
class RestorePlan:
    download: list[str] = field(default_factory=list)
    # Local and remote may hold the same bytes: compare by content before downloading;
    # when they differ, the local file is kept beside as a conflict copy.
    verify: list[str] = field(default_factory=list)
    # Both changed (or no manifest says which did), other sizes: S3's version takes the
    # name and the local one is kept beside it.
    conflicts: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Changed locally since the last sync while S3 kept the old version: push, not restore.
    local_changes: list[str] = field(default_factory=list)
    # Deleted from S3 since the last sync and untouched locally since.
    remove_local: list[str] = field(default_factory=list)
    # Not in S3 and new or edited locally: for the server to push.
    local_only: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            len(self.download)
            + len(self.verify)
            + len(self.conflicts)
            + len(self.unchanged)
            + len(self.local_changes)
        )


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
            plan.conflicts.append(relpath)
        else:
            plan.verify.append(relpath)
    for relpath, info in sorted(local_files.items()):
        if relpath in remote or (rules is not None and rules.ignored(relpath)):
            continue
        entry = manifest.get(relpath)
        if entry is not None and entry.matches_stat(info):
            plan.remove_local.append(relpath)
        else:
            plan.local_only.append(relpath)
    return plan


@dataclass
class WorkspaceView:
    """Both sides of one workspace at one moment, and the plan that follows from them."""

    location: str
    listing: dict[str, RemoteObject]
    # The listing by workspace-relative path, without ignored paths and the root marker.
    remote: dict[str, RemoteObject]
    rules: IgnoreRules
    manifest: Manifest
    tree: LocalTree
    plan: RestorePlan
    # Objects whose key would leave the workspace: never written, reported.
    refused: dict[str, str] = field(default_factory=dict)


def remote_files(
    key_prefix: str, listing: dict[str, RemoteObject], rules: IgnoreRules
) -> tuple[dict[str, RemoteObject], dict[str, str]]:
    """(relpath -> object, refused key -> why) for a listing of ``key_prefix``."""
    remote, refused = {}, {}
    for key, remote_object in listing.items():
        try:
            relpath = layout.relpath_for(key_prefix, key)
        except layout.LayoutError as error:
            refused[key] = f"no file name of this workspace ({error}); skipped"
            continue
        if relpath == layout.DIR_KEEP:
            continue
        if layout.safe_object_relpath(relpath) is None:
            refused[key] = "object key would leave the workspace; skipped"
            continue
        # Ignored paths are local-only: whatever S3 holds there is not restored.
        if not layout.is_dir_keep(relpath) and rules.ignored(relpath):
            continue
        remote[relpath] = remote_object
    return remote, refused


def read_local(root: Path, location: str, endpoint: str) -> tuple[IgnoreRules, Manifest, LocalTree]:
    """The ignore rules, the manifest and the local files (blocking; run in a thread)."""
    rules = load_ignore_rules(root)
    return rules, load_manifest(root, location, endpoint), scan_local(root, rules)


async def compare_workspace(
    store: S3Store, key_prefix: str, root: Path, listing: dict[str, RemoteObject] | None = None
) -> WorkspaceView:
    """List ``key_prefix`` and look at ``root`` at the same time; raises ``S3Error``.

    ``listing``: one already made (no second request).
    """
    location = f"s3://{store.bucket}/{key_prefix}"
    if listing is None:
        listing, (rules, manifest, tree) = await asyncio.gather(
            store.list(key_prefix), asyncio.to_thread(read_local, root, location, store.endpoint)
        )
    else:
        rules, manifest, tree = await asyncio.to_thread(read_local, root, location, store.endpoint)
    remote, refused = remote_files(key_prefix, listing, rules)
    plan = plan_restore(remote, tree.files, manifest, rules)
    return WorkspaceView(location, listing, remote, rules, manifest, tree, plan, refused)


# Linux's longest file name, in bytes.
NAME_MAX = 255


def conflict_relpath(relpath: str, epoch: float, attempt: int = 1) -> str:
    """``a/b.txt`` -> ``a/b.txt.conflict-20261206T023400Z`` (``-2``, ... for later
    attempts): where the other version of a file both sides changed is kept. A long name
    is shortened, in bytes, so that the result is still a file name."""
    folder, name = posixpath.split(relpath)
    suffix = time.strftime(".conflict-%Y%m%dT%H%M%SZ", time.gmtime(epoch))
    if attempt > 1:
        suffix += f"-{attempt}"
    raw = os.fsencode(name)[: NAME_MAX - len(suffix)]
    return posixpath.join(folder, os.fsdecode(raw) + suffix)


def empty_prefix_refusal(view: WorkspaceView, endpoint: str) -> str | None:
    """Why a restore must not go on, when S3 holds nothing at all where the manifest says
    this workspace was synced (an emptied bucket, a new endpoint): read as "deleted
    elsewhere", that would delete every local file. None when nothing speaks against it.
    """
    if view.listing:
        return None
    manifest = view.manifest
    if manifest.entries:
        synced = f"{len(manifest.entries)} objects, by its manifest"
    elif manifest.foreign is not None:
        location, other_endpoint, count = manifest.foreign
        synced = f"{count} objects at {location} on endpoint {other_endpoint}, by its manifest"
    else:
        return None
    return (
        f"S3 holds nothing at {view.location} on endpoint {endpoint}, but this workspace was "
        f"synced ({synced}): not restoring, and the local files are kept. If S3 was emptied "
        "on purpose, restore with --restore-empty-prefix push (CODEPILOT_RESTORE_EMPTY_PREFIX"
        "=push) to keep the local files and push them."
    )


def ignore_file_missing(key_prefix: str, root: Path, listing: dict[str, RemoteObject]) -> bool:
    """Whether S3 has the workspace's ``.codepilotignore`` and the folder does not (yet).

    Its rules decide what the rest of the restore skips, so it comes first.
    """
    key = layout.key_for(key_prefix, IGNORE_FILE)
    return key in listing and not local_path(root, IGNORE_FILE).exists()
