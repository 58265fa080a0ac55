"""Starters: the ones packaged with Code Pilot, and a class's own folders.

``python -m server_extension.sync seed-starters`` uploads the packaged ones to
``<prefix>/templates/<name>/`` (``templates`` is the stored name of the starters folder);
a new workspace is copied from there, or from here when the bucket has no such starter
(and on one machine without S3). On one machine a class's own starters are folders
under ``CODEPILOT_STARTERS_DIR`` (the hub sets it to ``<data dir>/templates``); a folder
there wins over a packaged starter of that name.
"""

import os
from pathlib import Path

from codepilot_contracts.env import STARTERS_DIR as STARTERS_DIR_VARIABLE
from codepilot_contracts.starters import folder_starter_names

STARTERS_DIR = Path(__file__).resolve().parent


def class_starters_dir(environ=os.environ) -> Path | None:
    raw = environ.get(STARTERS_DIR_VARIABLE, "")
    return Path(raw) if raw else None


def starter_names() -> list[str]:
    """The packaged starters (folders here; a test keeps them equal to PACKAGED_STARTERS)."""
    return folder_starter_names(STARTERS_DIR)


def starter_dir(name: str) -> Path | None:
    """The folder of starter ``name`` (a class's own first), or None when there is none."""
    class_dir = class_starters_dir()
    if name in folder_starter_names(class_dir):
        return class_dir / name
    return STARTERS_DIR / name if name in starter_names() else None
