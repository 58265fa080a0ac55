"""Where a workspace lives in S3: the shared key layout and its name rules, as pure functions.

``<prefix>/users/<user>/<server or "default">/<path>`` holds a workspace and
``<prefix>/templates/<name>/<path>`` a starter template. Every file is one plain object
keyed by its workspace-relative path; a folder exists by the objects below it, and an
empty folder by a ``<folder>/.s3keep`` object. This is
the layout of s3contents' ``S3ContentsManager`` with its ``prefix`` set to the workspace
prefix, so a workspace opens in either storage mode. The hub scopes per-user credentials
to ``user_prefix`` and lets them read ``templates_root``.
"""

import posixpath

from .defaults import DEFAULT_SERVER

DIR_KEEP = ".s3keep"


class LayoutError(ValueError):
    """A user, server or template name that cannot be part of an S3 key."""


def check_segment(kind: str, value: str) -> str:
    """``value`` when it can be one key segment (not empty, ``.``, ``..``, no ``/`` or NUL)."""
    if not isinstance(value, str) or value in ("", ".", "..") or "/" in value or "\x00" in value:
        raise LayoutError(f"{kind} {value!r} cannot be part of an S3 key")
    return value


def _join(*parts: str) -> str:
    """Join key parts, skipping empty ones; the result ends with ``/`` (or is empty)."""
    return "".join(part.strip("/") + "/" for part in parts if part.strip("/"))


def user_prefix(prefix: str, user: str) -> str:
    """``("cp", "alice")`` -> ``"cp/users/alice/"``: every workspace of the user."""
    return _join(prefix, "users", check_segment("user", user))


def templates_root(prefix: str) -> str:
    """``"cp"`` -> ``"cp/templates/"``: every starter template."""
    return _join(prefix, "templates")


def workspace_prefix(prefix: str, user: str, server: str = "") -> str:
    """``("cp", "alice", "")`` -> ``"cp/users/alice/default/"``."""
    server = check_segment("server", server or DEFAULT_SERVER)
    return user_prefix(prefix, user) + server + "/"


def template_prefix(prefix: str, name: str) -> str:
    """``("cp", "flask")`` -> ``"cp/templates/flask/"``."""
    return templates_root(prefix) + check_segment("template", name) + "/"


def s3contents_prefix(key_prefix: str) -> str:
    """The ``S3ContentsManager.prefix`` that opens the workspace at ``key_prefix``."""
    return key_prefix.rstrip("/")


def key_for(key_prefix: str, relpath: str) -> str:
    """The object key of a workspace-relative path (``""`` is the workspace itself)."""
    return key_prefix + relpath if relpath else key_prefix


def dir_keep_key(key_prefix: str, relpath: str) -> str:
    """The object that stands for the folder ``relpath`` (``""``: the workspace root)."""
    return key_for(key_prefix, posixpath.join(relpath, DIR_KEEP) if relpath else DIR_KEEP)


def relpath_for(key_prefix: str, key: str) -> str:
    """Inverse of ``key_for``; raises ``LayoutError`` for a key outside the prefix."""
    if not key.startswith(key_prefix):
        raise LayoutError(f"S3 key {key!r} is not under {key_prefix!r}")
    return key[len(key_prefix) :]


def is_dir_keep(relpath: str) -> bool:
    return posixpath.basename(relpath) == DIR_KEEP


def dir_of_keep(relpath: str) -> str:
    """``"a/b/.s3keep"`` -> ``"a/b"``; ``".s3keep"`` -> ``""``."""
    return posixpath.dirname(relpath)


def safe_object_relpath(relpath: str) -> str | None:
    """The path an object may be written to locally, or None when it would escape.

    Keys are data from S3, not trusted: ``../x``, absolute paths, empty segments and NUL
    bytes never reach the disk.
    """
    if not relpath or relpath.startswith("/") or "\x00" in relpath or "\\" in relpath:
        return None
    parts = relpath.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return relpath
