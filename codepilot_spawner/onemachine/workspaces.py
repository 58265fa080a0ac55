"""Where a server's workspace and its user's home live on one machine."""

import contextlib
import errno
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


def tmp_path(root: Path, username: str) -> Path:
    """The folder an isolated server of the user sees as ``/tmp``."""
    return root / "tmp" / path_segment(username)


def needs_machine_tmp(*paths) -> bool:
    """Whether any of ``paths`` (the data dir, the Python environment) lies in /tmp."""
    tmp = Path("/tmp").resolve()
    return any(Path(path).resolve().is_relative_to(tmp) for path in paths)


# Opened at each step from the folder above, never through a symlink.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A folder the hub prepares as root is a symlink or not a folder."""


def _open_dir(parent_fd: int, name: str) -> int:
    """The folder ``name`` in ``parent_fd``; a symlink there is refused, never followed."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as error:
        if isinstance(error, NotADirectoryError) or error.errno == errno.ELOOP:
            raise UnsafePath(f"{name!r} is a symlink or not a folder: refusing it") from None
        raise


def _open_dir_at(parent_fd: int, name: str) -> int:
    """``_open_dir``, making the folder first when missing (0700, then set by the caller
    on the descriptor itself)."""
    with contextlib.suppress(FileExistsError):  # there already, or made by another start
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    return _open_dir(parent_fd, name)


def _set(fd: int, mode: int, uid: int | None, gid: int | None) -> None:
    if uid is not None:
        os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)


def prepare_user_dirs(
    root: Path, username: str, server_name: str, uid: int | None = None, gid: int | None = None
) -> None:
    """The folders a server needs under the data dir ``root``, as the hub (often root)
    makes them: ``workspaces/``, ``homes/`` and ``tmp/`` (0711, the hub's),
    ``workspaces/<user>/`` (0711, the hub's: its user can create nothing beside a
    workspace), the workspace, the home and the user's ``/tmp`` (0700, owned by uid:gid
    when given). Every step opens the next folder from
    the one above with O_NOFOLLOW and sets owner and mode on what it opened, so no
    symlink planted on the way can hand another path to the user."""
    hub_uid, hub_gid = (os.geteuid(), os.getegid()) if uid is not None else (None, None)
    fds = [os.open(root, _DIR_FLAGS)]
    try:
        for shared in ("workspaces", "homes", "tmp"):
            fds.append(_open_dir_at(fds[0], shared))
            _set(fds[-1], 0o711, hub_uid, hub_gid)
        workspaces, homes, tmp = fds[1:4]
        fds.append(_open_dir_at(workspaces, path_segment(username)))
        _set(fds[-1], 0o711, hub_uid, hub_gid)
        fds.append(_open_dir_at(fds[-1], path_segment(server_name or DEFAULT_SERVER)))
        _set(fds[-1], 0o700, uid, gid)
        for parent in (homes, tmp):
            fds.append(_open_dir_at(parent, path_segment(username)))
            _set(fds[-1], 0o700, uid, gid)
    finally:
        for fd in fds:
            os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and all below it, never following a symlink (shutil's fd-based
    walk); a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
