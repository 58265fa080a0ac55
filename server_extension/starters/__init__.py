"""Starter templates packaged with Code Pilot, one folder each.

``python -m server_extension.sync seed-templates`` uploads them to
``<prefix>/templates/<name>/``; a new workspace is copied from there, or from here when
the bucket has no such template (and on one machine without S3).
"""

from pathlib import Path

STARTERS_DIR = Path(__file__).resolve().parent


def starter_names() -> list[str]:
    return sorted(
        path.name
        for path in STARTERS_DIR.iterdir()
        if path.is_dir() and not path.name.startswith(("_", "."))
    )


def starter_dir(name: str) -> Path | None:
    """The folder of the packaged starter ``name``, or None when there is none."""
    return STARTERS_DIR / name if name in starter_names() else None
