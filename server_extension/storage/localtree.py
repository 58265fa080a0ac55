"""The workspace on local disk: walking it and keeping every path inside it."""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .ignore import IgnoreRules


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
    # commonpath, not a prefix test: "/" + os.sep is no prefix of "/etc".
    return os.path.commonpath([real_root, real]) == real_root


def holder_is_inside(root: Path, path: Path) -> bool:
    """Whether the folder holding ``path`` resolves inside ``root``; ``path`` itself may be
    a symlink out. The root holds itself: its parent is not the test of it.
    """
    absolute = os.path.abspath(path)
    if absolute == os.path.abspath(root):
        return True
    return is_inside(root, os.path.dirname(absolute))


def first_link_out(root: Path, folder: str | Path) -> str | None:
    """The first symlink below ``folder`` whose target resolves outside ``root``, if any
    (``folder`` itself is not looked at; it need not be a folder)."""
    for current, dirs, files in os.walk(folder):  # never follows a symlinked folder
        for name in (*dirs, *files):
            path = os.path.join(current, name)
            if os.path.islink(path) and not is_inside(root, path):
                return path
    return None


def has_symlink_component(root: Path, relpath: str) -> bool:
    """Whether any existing component of ``relpath`` below ``root`` is a symlink.

    ``root`` itself does not count: a workspace may live behind a symlink.
    """
    current = root
    for part in relpath.split("/"):
        if part in ("", "."):
            continue
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
