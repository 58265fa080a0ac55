"""What the workspace and S3 last agreed on: one entry per synced object.

An entry records the object's ETag and the local file's size and mtime when they held
the same bytes. A local file whose size and mtime still match its entry is unchanged
since then; an object whose ETag still matches is unchanged in S3. That is how restore
and the watcher skip unchanged files without reading them.

The manifest is a JSON file in the workspace's ``.codepilot/`` folder (never synced),
written atomically; it names the S3 location it belongs to and is ignored elsewhere.
"""

import json
import os
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .ignore import STATE_DIR

MANIFEST_NAME = "sync-manifest.json"
FORMAT_VERSION = 1


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

    def __init__(self, location: str, entries: dict[str, Entry] | None = None):
        self.location = location
        self.entries: dict[str, Entry] = dict(entries or {})
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
                "files": {
                    path: [entry.size, entry.mtime_ns, entry.etag]
                    for path, entry in sorted(self.entries.items())
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, location: str) -> "Manifest":
        """Parse a manifest; one for another location or format starts empty."""
        try:
            data = json.loads(text)
            if data.get("version") != FORMAT_VERSION or data.get("location") != location:
                return cls(location)
            entries = {
                path: Entry(int(size), int(mtime_ns), str(etag))
                for path, (size, mtime_ns, etag) in data["files"].items()
            }
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls(location)
        return cls(location, entries)


def load_manifest(root: Path, location: str) -> Manifest:
    try:
        text = manifest_path(root).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return Manifest(location)
    return Manifest.from_json(text, location)


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
