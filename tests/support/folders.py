"""Folders as S3 implies them: every folder above an object's key (its files, its marker).

Written apart from the engine's ``manifest.ancestors`` on purpose: the property model
and the burst tests check the engine, so they must not share its code.
"""


def ancestors(relpath: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b"]``."""
    parts = relpath.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]
