"""Starter templates: the ones packaged with Code Pilot, and a class's own folders.

``python -m server_extension.sync seed-templates`` uploads the packaged ones to
``<prefix>/templates/<name>/``; a new workspace is copied from there, or from here when
the bucket has no such template (and on one machine without S3). On one machine a
class's own starters are folders under ``CODEPILOT_STARTERS_DIR`` (the hub sets it to
``<data dir>/templates``); a folder there wins over a packaged starter of that name.
"""

import os
import re
from pathlib import Path

STARTERS_DIR = Path(__file__).resolve().parent
STARTERS_DIR_VARIABLE = "CODEPILOT_STARTERS_DIR"
# A starter's name becomes an S3 key segment and an HTML option: keep it plain.
STARTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def folder_starter_names(folder: Path | None) -> list[str]:
    """Names of the starter folders in ``folder`` (none when it does not exist)."""
    if folder is None:
        return []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(
        entry.name
        for entry in entries
        if STARTER_NAME.match(entry.name) and entry.is_dir() and not entry.is_symlink()
    )


def class_starters_dir(environ=os.environ) -> Path | None:
    raw = environ.get(STARTERS_DIR_VARIABLE, "")
    return Path(raw) if raw else None


def starter_names() -> list[str]:
    return sorted(
        path.name
        for path in STARTERS_DIR.iterdir()
        if path.is_dir() and not path.name.startswith(("_", "."))
    )


def starter_dir(name: str) -> Path | None:
    """The folder of starter ``name`` (a class's own first), or None when there is none."""
    class_dir = class_starters_dir()
    if name in folder_starter_names(class_dir):
        return class_dir / name
    return STARTERS_DIR / name if name in starter_names() else None
