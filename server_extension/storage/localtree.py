"""The workspace on local disk: walking it and keeping every path inside it."""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .ignore import STATE_DIR, IgnoreRules


@dataclass
class LocalTree:
    """Regular files (with their stat) and folders of a workspace, by relative POSIX path."""

    files: dict[str, os.stat_result] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)


def scan_local(root: Path, rules: IgnoreRules, start: str = "") -> LocalTree:
    """Walk ``root/start`` without following symlinks, skipping ignored paths.

    Symlinks are left out altogether: S3 has no such thing, and following one could
    upload what lies outside the workspace.
    """
    tree = LocalTree()
    pending = [start]
    while pending:
        relative_dir = pending.pop()
        if relative_dir:
            tree.dirs.add(relative_dir)
        try:
            entries = list(os.scandir(root / relative_dir if relative_dir else root))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            relpath = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            if relpath == STATE_DIR:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                if not rules.ignored(relpath, is_dir=True):
                    pending.append(relpath)
            elif stat.S_ISREG(info.st_mode) and not rules.ignored(relpath):
                tree.files[relpath] = info
    return tree


def local_path(root: Path, relpath: str) -> Path:
    return root / relpath if relpath else root


def is_inside(root: Path, path: Path) -> bool:
    """Whether ``path`` resolves (through any symlinks) to ``root`` or below it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


def has_symlink_component(root: Path, relpath: str) -> bool:
    """Whether any existing component of ``relpath`` below ``root`` is a symlink."""
    current = root
    for part in relpath.split("/"):
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return True
        except FileNotFoundError:
            return False
    return False


def relative_posix(root: Path, path: str | Path) -> str | None:
    """``root/a/b`` -> ``"a/b"``; None for a path outside ``root``."""
    try:
        relative = Path(os.path.abspath(path)).relative_to(root)
    except ValueError:
        return None
    text = relative.as_posix()
    return "" if text == "." else text
