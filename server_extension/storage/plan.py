"""What differs between a local workspace and its S3 copy, and what each path needs.

``compare_workspace`` lists the S3 prefix while, in worker threads, it reads the ignore
rules and the manifest and walks the local folder: the listing is a network wait, the
rest is disk work, so they overlap. ``plan_restore`` then decides per path from the
listing, the local files' stat and the manifest. Restore carries the plan out; ``sync
status`` only reports it.
"""

import asyncio
import os
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
    # Local and remote may hold the same bytes: compare by content before downloading.
    verify: list[str] = field(default_factory=list)
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


def read_local(root: Path, location: str) -> tuple[IgnoreRules, Manifest, LocalTree]:
    """The ignore rules, the manifest and the local files (blocking; run in a thread)."""
    rules = load_ignore_rules(root)
    return rules, load_manifest(root, location), scan_local(root, rules)


async def compare_workspace(
    store: S3Store, key_prefix: str, root: Path, listing: dict[str, RemoteObject] | None = None
) -> WorkspaceView:
    """List ``key_prefix`` and look at ``root`` at the same time; raises ``S3Error``.

    ``listing``: one already made (no second request).
    """
    location = f"s3://{store.bucket}/{key_prefix}"
    if listing is None:
        listing, (rules, manifest, tree) = await asyncio.gather(
            store.list(key_prefix), asyncio.to_thread(read_local, root, location)
        )
    else:
        rules, manifest, tree = await asyncio.to_thread(read_local, root, location)
    remote, refused = remote_files(key_prefix, listing, rules)
    plan = plan_restore(remote, tree.files, manifest, rules)
    return WorkspaceView(location, listing, remote, rules, manifest, tree, plan, refused)


def ignore_file_missing(key_prefix: str, root: Path, listing: dict[str, RemoteObject]) -> bool:
    """Whether S3 has the workspace's ``.codepilotignore`` and the folder does not (yet).

    Its rules decide what the rest of the restore skips, so it comes first.
    """
    key = layout.key_for(key_prefix, IGNORE_FILE)
    return key in listing and not local_path(root, IGNORE_FILE).exists()
