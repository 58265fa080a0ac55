"""The small-files pack: one object that saves a restore thousands of GETs.

Beside the per-file objects (which stay the source of truth, and what s3contents reads)
a workspace may hold ``.codepilot/pack/pack.tar``: a plain tar of its small files as
they were when the pack was made, and ``.codepilot/pack/index.json``, the pack's index:
the ETag of each (named ``manifest.json`` before, still read). A restore that needs many
files fetches the pack in one GET and takes from it the files whose ETag in the listing
is still the one the pack has, checking each one's MD5; what differs, or is large, is
fetched one by one as before.

Member names in the pack are only looked up, never used as paths: a file is written
where the restore plan (which checks every path) says, so a tampered pack can at worst
fail the MD5 check and have its files fetched one by one.
"""

import asyncio
import hashlib
import json
import os
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from codepilot_contracts import layout

from .ignore import STATE_DIR, load_ignore_rules
from .localtree import local_path, scan_local
from .manifest import Entry, Manifest
from .s3 import MiB, RemoteObject, S3Store

PACK = f"{STATE_DIR}/pack/pack.tar"
PACK_INDEX = f"{STATE_DIR}/pack/index.json"
# Where earlier versions kept the index: read when there is no other, deleted at the next pack.
FORMER_PACK_INDEX = f"{STATE_DIR}/pack/manifest.json"
# Files up to this size go in the pack; larger ones are few and cost one GET each anyway.
SMALL_FILE = 256 * 1024
MAX_PACK_BYTES = 512 * MiB
# Below this many files to fetch, one GET each is as quick as the pack.
MIN_FILES_FOR_PACK = 16
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PackMember:
    relpath: str
    etag: str


def packable(manifest: Manifest, files: dict[str, os.stat_result]) -> dict[str, str]:
    """Small files whose local copy is what S3 holds (by the manifest): relpath -> ETag.

    Multipart ETags are not an MD5 of the bytes, so such files stay out (they are large
    anyway).
    """
    chosen, total = {}, 0
    for relpath in sorted(files):
        info, entry = files[relpath], manifest.get(relpath)
        if entry is None or not entry.matches_stat(info) or "-" in entry.etag:
            continue
        if info.st_size > SMALL_FILE or total + info.st_size > MAX_PACK_BYTES:
            continue
        chosen[relpath] = entry.etag
        total += info.st_size
    return chosen


def pack_is_stale(packed: dict[str, str], current: dict[str, str], min_changes: int) -> bool:
    """Whether at least ``min_changes`` small files differ between the pack and now."""
    differing = sum(1 for path, etag in current.items() if packed.get(path) != etag)
    differing += sum(1 for path in packed if path not in current)
    return differing >= max(1, min_changes)


def _blocks(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def tar_footprint(size: int, relpath: str = "") -> int:
    """Bytes a member of ``size`` takes in the tar: its header and its padded data, and a
    PAX header when its name is not short ASCII (an odd name, a deep path)."""
    footprint = tarfile.BLOCKSIZE + _blocks(size)
    name = os.fsencode(relpath)
    if len(name) > tarfile.LENGTH_NAME or not name.isascii():
        footprint += tarfile.BLOCKSIZE + _blocks(len(name) + 32)  # "<n> path=<name>\n" and more
    return footprint


def pack_index_document(members: dict[str, str]) -> bytes:
    return json.dumps({"version": FORMAT_VERSION, "files": members}, sort_keys=True).encode()


def parse_pack_index(data: bytes) -> dict[str, str]:
    """The pack's relpath -> ETag map; {} for anything unreadable (the pack is then unused)."""
    try:
        document = json.loads(data)
        files = document["files"] if document.get("version") == FORMAT_VERSION else {}
        return {
            path: etag for path, etag in files.items() if isinstance(etag, str) and "-" not in etag
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def write_pack(root: Path, members: dict[str, str], pack: Path) -> dict[str, str]:
    """Write the tar of ``members`` (blocking); returns those really packed, by ETag.

    A file whose bytes no longer match its ETag (changed since) is left out.
    """
    packed = {}
    with tarfile.open(pack, "w", format=tarfile.PAX_FORMAT) as tar:
        for relpath, etag in members.items():
            try:
                data = local_path(root, relpath).read_bytes()
            except OSError:
                continue
            if hashlib.md5(data, usedforsecurity=False).hexdigest() != etag:
                continue
            info = tarfile.TarInfo(relpath)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, _Bytes(data))
            packed[relpath] = etag
    return packed


class _Bytes:
    """A minimal file object over bytes, for ``TarFile.addfile``."""

    def __init__(self, data: bytes):
        self._view, self._offset = memoryview(data), 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._offset + size
        chunk = self._view[self._offset : end]
        self._offset += len(chunk)
        return bytes(chunk)


def pack_index_key(key_prefix: str, listing) -> str | None:
    """The key of the pack's index among the ``listing``'s keys, by its name or its former
    one; None when there is neither."""
    for relpath in (PACK_INDEX, FORMER_PACK_INDEX):
        key = layout.key_for(key_prefix, relpath)
        if key in listing:
            return key
    return None


async def upload_pack(store: S3Store, key_prefix: str, root: Path, members: dict[str, str]):
    """Build and upload the pack, then its index; returns what it holds (relpath -> ETag)."""
    scratch = root / STATE_DIR / "tmp"
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    pack = scratch / f"pack-{uuid.uuid4().hex}.tar"
    try:
        packed = await asyncio.to_thread(write_pack, root, members, pack)
        size = (await asyncio.to_thread(pack.stat)).st_size
        await store.upload_file(pack, layout.key_for(key_prefix, PACK), size)
        # The index goes last: it never names files a pack in S3 does not hold.
        await store.put_bytes(layout.key_for(key_prefix, PACK_INDEX), pack_index_document(packed))
        await store.delete([layout.key_for(key_prefix, FORMER_PACK_INDEX)])
    finally:
        await asyncio.to_thread(pack.unlink, True)
    return packed


def wanted_from_pack(
    pack_files: dict[str, str], remote: dict[str, RemoteObject], download: list[str]
) -> set[str]:
    """Files to take from the pack: to be downloaded, and the same object as packed."""
    return {
        relpath
        for relpath in download
        if relpath in pack_files and remote[relpath].etag == pack_files[relpath]
    }


def unpack_wanted(
    pack: Path, wanted: dict[str, Path], etags: dict[str, str], scratch: Path
) -> dict[str, tuple[str, os.stat_result]]:
    """Write the ``wanted`` members (relpath -> checked target path) from ``pack`` (blocking).

    Returns relpath -> (ETag, stat) of those written; the rest (missing, damaged, or an
    MD5 that differs from the ETag) are for the caller to fetch one by one.
    """
    written = {}
    try:
        with tarfile.open(pack, "r:") as tar:
            for member in tar:
                target = wanted.get(member.name)
                if target is None or not member.isreg() or member.name in written:
                    continue
                source = tar.extractfile(member)
                data = source.read() if source is not None else b""
                if hashlib.md5(data, usedforsecurity=False).hexdigest() != etags[member.name]:
                    continue
                temporary = scratch / f"unpack-{uuid.uuid4().hex}"
                with open(temporary, "wb") as file:
                    file.write(data)
                os.replace(temporary, target)
                written[member.name] = (etags[member.name], os.stat(target))
    except (tarfile.TarError, EOFError, OSError):
        pass  # a damaged pack: what was written is good, the rest is fetched
    return written


def manifest_entries(written: dict[str, tuple[str, os.stat_result]]) -> dict[str, Entry]:
    return {
        relpath: Entry(info.st_size, info.st_mtime_ns, etag)
        for relpath, (etag, info) in written.items()
    }


class PackKeeper:
    """Keeps a running workspace's pack close to its small files.

    ``synced`` is the sync engine's record of what S3 holds (``manifest.Manifest``), read
    as it stands at each refresh; the ignore rules are read from the workspace then too.
    """

    def __init__(self, root: Path, store: S3Store, key_prefix: str, synced: Manifest):
        self.root = root
        self.store = store
        self.key_prefix = key_prefix
        self.synced = synced
        self._packed: dict[str, str] | None = None

    async def _uploaded(self) -> dict[str, str]:
        if self._packed is None:
            listing = await self.store.list(layout.key_for(self.key_prefix, f"{STATE_DIR}/pack/"))
            key = pack_index_key(self.key_prefix, listing)
            self._packed = parse_pack_index(await self.store.read_bytes(key)) if key else {}
        return self._packed

    async def refresh(self, min_changes: int) -> bool:
        """Upload a new pack when ``min_changes`` small files differ from the last one.

        Raises ``S3Error``; returns whether a pack was uploaded.
        """
        tree = await asyncio.to_thread(_scan_synced, self.root)
        current = packable(self.synced, tree.files)
        if not pack_is_stale(await self._uploaded(), current, min_changes):
            return False
        self._packed = await upload_pack(self.store, self.key_prefix, self.root, current)
        return True


def _scan_synced(root: Path):
    """The workspace as sync sees it now, by its current ignore rules (blocking)."""
    return scan_local(root, load_ignore_rules(root))
