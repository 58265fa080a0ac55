"""What the workspace and S3 last agreed on: one entry per synced object.

An entry records the object's ETag and the local file's size and mtime when they held
the same bytes. A local file whose size and mtime still match its entry is unchanged
since then; an object whose ETag still matches is unchanged in S3. That is how restore
and the watcher skip unchanged files without reading them.

The manifest is a JSON file in the workspace's ``.codepilot/`` folder (never synced),
written atomically; it names the S3 location and endpoint it belongs to and is ignored
elsewhere. What it was made for then stays known (``Manifest.foreign``): a restore that
finds S3 empty reads it as proof the workspace was synced somewhere, not as "deleted".
"""

import json
import os
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from codepilot_contracts import layout

from .ignore import STATE_DIR

MANIFEST_NAME = "sync-manifest.json"
# Files a restore found changed on both sides: name -> where the local version was kept.
CONFLICTS_NAME = "conflicts.json"
# 2: the endpoint is recorded, and keys are escaped names (``layout.encode_relpath``).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Entry:
    size: int
    mtime_ns: int
    etag: str

    def matches_stat(self, stat: os.stat_result) -> bool:
        return self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def manifest_path(root: Path) -> Path:
    return state_dir(root) / MANIFEST_NAME


def ancestors(relpath: str):
    """``"a/b/c"`` -> ``"a/b"``, ``"a"`` (the root ``""`` is left out)."""
    folder = posixpath.dirname(relpath)
    while folder:
        yield folder
        folder = posixpath.dirname(folder)


class Manifest:
    """Entries by workspace-relative path, for one location: the objects S3 holds.

    A folder is in S3 when an object lies below it: its files, or its ``a/.s3keep``
    marker when it holds nothing else. ``has_folder`` answers that from an index.
    """

    def __init__(self, location: str, entries: dict[str, Entry] | None = None, endpoint: str = ""):
        self.location = location
        self.endpoint = endpoint
        self.entries: dict[str, Entry] = dict(entries or {})
        # A manifest of another location or endpoint found in its place: (location,
        # endpoint, how many objects it recorded); None when there was none.
        self.foreign: tuple[str, str, int] | None = None
        self.dirty = False
        # Folder -> how many entries lie below it.
        self._below: Counter[str] = Counter(
            folder for relpath in self.entries for folder in ancestors(relpath)
        )

    def get(self, relpath: str) -> Entry | None:
        return self.entries.get(relpath)

    def has_folder(self, relpath: str) -> bool:
        """Whether S3 holds the folder ``relpath``: some entry lies below it."""
        return self._below[relpath] > 0

    def set(self, relpath: str, entry: Entry) -> None:
        old = self.entries.get(relpath)
        if old != entry:
            if old is None:
                self._below.update(ancestors(relpath))
            self.entries[relpath] = entry
            self.dirty = True

    def discard(self, relpath: str) -> None:
        if self.entries.pop(relpath, None) is not None:
            self._below.subtract(ancestors(relpath))
            self.dirty = True

    def under(self, relpath: str) -> list[str]:
        """Paths of entries inside the folder ``relpath``."""
        prefix = relpath.rstrip("/") + "/"
        return [path for path in self.entries if path.startswith(prefix)]

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": FORMAT_VERSION,
                "location": self.location,
                "endpoint": self.endpoint,
                "files": {
                    path: [entry.size, entry.mtime_ns, entry.etag]
                    for path, entry in sorted(self.entries.items())
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, location: str, endpoint: str = "") -> "Manifest":
        """Parse a manifest; one for another location, endpoint or format starts empty
        (and says in ``foreign`` what it was for).

        Format 1 recorded no endpoint and keyed every name as it is: its entries count
        for any endpoint, except those of names now stored escaped (their keys moved).
        """
        try:
            data = json.loads(text)
            version, files = data.get("version"), data["files"]
            entries = {
                path: Entry(int(size), int(mtime_ns), str(etag))
                for path, (size, mtime_ns, etag) in files.items()
            }
            recorded = (str(data.get("location")), str(data.get("endpoint", endpoint)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(location, endpoint=endpoint)
        if version == 1 and recorded[0] == location:
            kept = {path: e for path, e in entries.items() if layout.encode_relpath(path) == path}
            return cls(location, kept, endpoint)
        if version == FORMAT_VERSION and recorded == (location, endpoint):
            return cls(location, entries, endpoint)
        manifest = cls(location, endpoint=endpoint)
        if entries and version in (1, FORMAT_VERSION):
            manifest.foreign = (*recorded, len(entries))
        return manifest


def load_manifest(root: Path, location: str, endpoint: str = "") -> Manifest:
    try:
        text = manifest_path(root).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return Manifest(location, endpoint=endpoint)
    return Manifest.from_json(text, location, endpoint)


def write_manifest_text(root: Path, text: str) -> None:
    """Write atomically: a crash leaves the old manifest or the new one, never half."""
    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def save_manifest(root: Path, manifest: Manifest) -> None:
    text = manifest.to_json()
    manifest.dirty = False
    write_manifest_text(root, text)


def load_conflicts(root: Path) -> dict[str, str]:
    """The conflicts restores recorded whose kept copy is still there (blocking)."""
    try:
        recorded = json.loads((state_dir(root) / CONFLICTS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {
        relpath: kept
        for relpath, kept in recorded.items()
        if isinstance(kept, str) and os.path.lexists(root / kept)
    }


def record_conflicts(root: Path, conflicts: dict[str, str]) -> None:
    """Add ``conflicts`` to those recorded, for the server's sync status (blocking)."""
    merged = {**load_conflicts(root), **conflicts}
    path = state_dir(root) / CONFLICTS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, sort_keys=True))
