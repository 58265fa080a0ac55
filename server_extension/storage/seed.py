"""A new workspace's first files: the chosen starter, one rule for both storages.

A workspace gets the starter only while it is new: it holds no file that sync would
keep (``workspace_is_new``; bookkeeping and ignored folders do not count) and, with S3,
nothing is stored under its prefix. With S3 the starter is copied into the prefix
(from ``<prefix>/templates/<name>/``, the starters folder, when the bucket has it, else
the packaged or class starter) and then restored like any workspace; without S3 the
starter's files are copied into the folder. Either way the restore's final record names
the starter.
"""

import asyncio
import shutil
from pathlib import Path

from codepilot_contracts import layout

from ..starters import starter_dir
from .ignore import IgnoreRules, load_ignore_rules
from .localtree import scan_local
from .location import WorkspaceLocation
from .s3 import S3Store


def workspace_is_new(root: Path) -> bool:
    """Whether ``root`` holds no file that sync would keep (blocking)."""
    return not scan_local(root, IgnoreRules()).files


def starter_files(folder: Path) -> list[str]:
    """The files of a starter folder that a workspace gets (its own ignore rules apply)."""
    return sorted(scan_local(folder, load_ignore_rules(folder)).files)


def starter_folder(starter: str) -> Path:
    folder = starter_dir(starter)
    if folder is None:
        raise ValueError(f"no starter named {starter!r}")
    return folder


def copy_starter(root: Path, starter: str, on_progress=None) -> int:
    """Copy the starter ``starter`` into the new workspace ``root`` (blocking).

    Returns how many files were copied; raises ``ValueError`` for an unknown starter.
    """
    folder = starter_folder(starter)
    files = starter_files(folder)
    for done, relpath in enumerate(files, 1):
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / relpath, target)
        if on_progress:
            on_progress(done, len(files))
    return len(files)


async def seed_prefix(store: S3Store, location: WorkspaceLocation, root: Path, starter: str) -> str:
    """Fill an empty workspace prefix: the starter when chosen and the workspace is new,
    then the root marker. Returns the starter used, or "".

    A local workspace that already has files keeps them: the server pushes them instead.
    """
    key_prefix = location.key_prefix
    used = ""
    if starter and await asyncio.to_thread(workspace_is_new, root):
        source_prefix = location.starter_prefix(starter)
        objects = await store.list(source_prefix)
        if objects:
            await asyncio.gather(
                *(
                    # The rest of the key as it is: both prefixes use the same escapes.
                    store.copy(key, key_prefix + key[len(source_prefix) :])
                    for key in objects
                    if key[len(source_prefix) :] != layout.DIR_KEEP
                )
            )
        else:
            await upload_folder(store, starter_folder(starter), key_prefix)
        used = starter
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
