"""Starters: the names packaged with Code Pilot and the rule for a starter's name.

The packaged starters are folders of ``server_extension/starters/`` (a test keeps the
two equal); the hub offers them, in this order, in the spawn form. A class's own
starters are folders named by ``STARTER_NAME``.
"""

import re
from pathlib import Path

# The stored name of the folder that holds a deployment's starters, in S3
# (``<prefix>/templates/<name>/``) and on one machine (``<data dir>/templates/<name>/``):
# the name it had before "starter" was the word, kept so that the starters a deployment
# already holds stay where they are, with no copy and no second place to look.
STORED_FOLDER = "templates"

# A starter's name becomes an S3 key segment and an HTML option: keep it plain.
STARTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

PACKAGED_STARTERS = ("python", "flask", "node-express", "react-vite")
# Names shown in spawn forms; a starter not listed here shows its own name.
STARTER_TITLES = {
    "python": "Python",
    "flask": "Flask web app",
    "node-express": "Node.js + Express",
    "react-vite": "React + Vite",
}


def folder_starter_names(folder: Path | None) -> list[str]:
    """Names of the starter folders in ``folder``; none when it is None or does not exist.

    Symlinks are skipped: a class folder must not point a starter at another user's files.
    """
    if folder is None:
        return []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    return sorted(
        entry.name
        for entry in entries
        if STARTER_NAME.match(entry.name) and entry.is_dir() and not entry.is_symlink()
    )
