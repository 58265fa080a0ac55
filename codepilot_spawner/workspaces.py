"""Where a server's workspace and its user's home live on one machine."""

import contextlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from codepilot_contracts.defaults import DEFAULT_SERVER

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def path_segment(name: str) -> str:
    """A hub user or server name as one directory name, reversible and never ``..``."""
    if _SAFE_SEGMENT.fullmatch(name):
        return name
    return quote(name, safe="").replace(".", "%2E")


def workspace_path(root: Path, username: str, server_name: str) -> Path:
    """``<root>/workspaces/<user>/<server or "default">``, as in the S3 layout."""
    return (
        root / "workspaces" / path_segment(username) / path_segment(server_name or DEFAULT_SERVER)
    )


def home_path(root: Path, username: str) -> Path:
    return root / "homes" / path_segment(username)


def make_private_dir(path: Path, uid: int | None = None, gid: int | None = None) -> None:
    """Create ``path`` (and parents) and make it 0700, owned by uid:gid when given."""
    path.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        os.chown(path, uid, gid)
    path.chmod(0o700)


def make_traversable_dir(path: Path) -> None:
    """A parent that every user may pass through but not list (0711)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o711)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and all below it, never following a symlink (shutil's fd-based
    walk); a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
