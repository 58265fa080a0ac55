"""Where a workspace lives in S3: the shared key layout and its name rules, as pure functions.

``<prefix>/users/<user>/<server or "default">/<path>`` holds a workspace and
``<prefix>/templates/<name>/<path>`` a starter (``templates`` is the stored name of the
starters folder, ``starters.STORED_FOLDER``). Every file is one plain object
keyed by its workspace-relative path; a folder exists by the objects below it, and an
empty folder by a ``<folder>/.s3keep`` object. This is
the layout of s3contents' ``S3ContentsManager`` with its ``prefix`` set to the workspace
prefix, so a workspace opens in either storage mode. The hub scopes per-user credentials
to ``user_prefix`` and lets them read ``starters_root``.

File names are bytes on Linux, keys are UTF-8 text that S3 lists in XML: a path segment
that a key cannot hold as it is (invalid UTF-8, control characters, a backslash) is
stored escaped, reversibly (``encode_relpath``/``decode_relpath``); every other name is
its own key.
"""

import posixpath

from .defaults import DEFAULT_SERVER
from .starters import STORED_FOLDER

DIR_KEEP = ".s3keep"
# S3's limit on a key's length, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
# An escaped segment starts with this; the rest is its name with the bytes a key cannot
# hold, and "%", as %XX: ``caf\xe9.txt`` -> ``%%caf%E9.txt``, ``a\b`` -> ``%%a%5Cb``.
# A name that starts with it is escaped too, so every key decodes one way only.
ESCAPED = "%%"


class LayoutError(ValueError):
    """A user, server or starter name that cannot be part of an S3 key."""


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


def starters_root(prefix: str) -> str:
    """``"cp"`` -> ``"cp/templates/"``: every starter (in the folder's stored name)."""
    return _join(prefix, STORED_FOLDER)


def workspace_prefix(prefix: str, user: str, server: str = "") -> str:
    """``("cp", "alice", "")`` -> ``"cp/users/alice/default/"``."""
    server = check_segment("server", server or DEFAULT_SERVER)
    return user_prefix(prefix, user) + server + "/"


def starter_prefix(prefix: str, name: str) -> str:
    """``("cp", "flask")`` -> ``"cp/templates/flask/"``."""
    return starters_root(prefix) + check_segment("starter", name) + "/"


def s3contents_prefix(key_prefix: str) -> str:
    """The ``S3ContentsManager.prefix`` that opens the workspace at ``key_prefix``."""
    return key_prefix.rstrip("/")


def _unsafe(char: str) -> bool:
    """Whether a key cannot hold ``char`` as it is: bytes of invalid UTF-8 (surrogate
    escapes), controls (XML 1.0 cannot carry most, and turns CR into LF), XML's
    non-characters, and the backslash (a path separator to Windows tools)."""
    code = ord(char)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or code in (0xFFFE, 0xFFFF)
        or char == "\\"
    )


def _escape(char: str) -> str:
    if char != "%" and not _unsafe(char):
        return char
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape"))


def encode_segment(name: str) -> str:
    """One file name (as ``os.fsdecode`` gives it) as one key segment; reversible."""
    if not name.startswith(ESCAPED) and not any(_unsafe(char) for char in name):
        return name
    try:
        return ESCAPED + "".join(_escape(char) for char in name)
    except UnicodeEncodeError as error:  # a surrogate no byte string decodes to
        raise LayoutError(f"file name {name!r} is not a Linux file name") from error


def decode_segment(segment: str) -> str:
    """Inverse of ``encode_segment``; raises ``LayoutError`` for a segment it never makes."""
    if not segment.startswith(ESCAPED):
        if any(_unsafe(char) for char in segment):
            raise LayoutError(f"key segment {segment!r} holds what is stored escaped")
        return segment
    data = bytearray()
    body = segment[len(ESCAPED) :]
    index = 0
    while index < len(body):
        if body[index] == "%":
            digits = body[index + 1 : index + 3]
            if len(digits) != 2 or not all(digit in "0123456789ABCDEF" for digit in digits):
                raise LayoutError(f"key segment {segment!r} has a bad escape")
            data.append(int(digits, 16))
            index += 3
        else:
            data += body[index].encode("utf-8", "surrogateescape")
            index += 1
    name = data.decode("utf-8", "surrogateescape")
    if name in ("", ".", "..") or "/" in name or "\x00" in name or encode_segment(name) != segment:
        raise LayoutError(f"key segment {segment!r} is not one this layout writes")
    return name


def encode_relpath(relpath: str) -> str:
    """A workspace-relative path as the rest of its key, segment by segment."""
    return "/".join(encode_segment(part) if part else part for part in relpath.split("/"))


def decode_relpath(rest: str) -> str:
    """Inverse of ``encode_relpath``; raises ``LayoutError`` for what it never makes."""
    return "/".join(decode_segment(part) if part else part for part in rest.split("/"))


def key_for(key_prefix: str, relpath: str) -> str:
    """The object key of a workspace-relative path (``""`` is the workspace itself).

    Raises ``LayoutError`` when the key would be longer than S3 allows.
    """
    key = key_prefix + encode_relpath(relpath) if relpath else key_prefix
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise LayoutError(f"the S3 key of {relpath!r} would be longer than {MAX_KEY_BYTES} bytes")
    return key


def keep_relpath(relpath: str) -> str:
    """The workspace path of the folder ``relpath``'s marker (``""``: the root's)."""
    return posixpath.join(relpath, DIR_KEEP) if relpath else DIR_KEEP


def dir_keep_key(key_prefix: str, relpath: str) -> str:
    """The object that stands for the folder ``relpath`` (``""``: the workspace root)."""
    return key_for(key_prefix, keep_relpath(relpath))


def relpath_for(key_prefix: str, key: str) -> str:
    """Inverse of ``key_for``; raises ``LayoutError`` for a key outside the prefix or one
    ``key_for`` never makes (a raw backslash, a bad escape)."""
    if not key.startswith(key_prefix):
        raise LayoutError(f"S3 key {key!r} is not under {key_prefix!r}")
    return decode_relpath(key[len(key_prefix) :])


def is_dir_keep(relpath: str) -> bool:
    return posixpath.basename(relpath) == DIR_KEEP


def dir_of_keep(relpath: str) -> str:
    """``"a/b/.s3keep"`` -> ``"a/b"``; ``".s3keep"`` -> ``""``."""
    return posixpath.dirname(relpath)


def safe_object_relpath(relpath: str) -> str | None:
    """The path an object may be written to locally, or None when it would escape.

    Keys are data from S3, not trusted: ``../x``, absolute paths, empty segments and NUL
    bytes never reach the disk. (A backslash is a name's character on Linux.)
    """
    if not relpath or relpath.startswith("/") or "\x00" in relpath:
        return None
    parts = relpath.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return relpath
