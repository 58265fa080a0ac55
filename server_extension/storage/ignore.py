"""Which workspace paths stay local: defaults plus ``.codepilotignore`` (gitignore syntax)."""

import os
from pathlib import Path

import pathspec

IGNORE_FILE = ".codepilotignore"

# Sync bookkeeping lives in the workspace but never leaves it.
STATE_DIR = ".codepilot"

DEFAULT_PATTERNS = (
    "node_modules/",
    ".venv/",
    "__pycache__/",
    ".cache/",
    "*.pyc",
    ".ipynb_checkpoints/",
    # jupyterlab-lsp's copies of open notebooks for the language servers, rewritten as
    # the student types.
    ".virtual_documents/",
    # A folder marker in S3 only; a local file of that name would clash with it.
    ".s3keep",
)


def is_state_path(relpath: str) -> bool:
    """Whether ``relpath`` is the sync bookkeeping folder or inside it (never synced)."""
    return relpath == STATE_DIR or relpath.startswith(STATE_DIR + "/")


class IgnoreRules:
    """Matches workspace-relative POSIX paths against the ignore patterns.

    The bookkeeping folder is always ignored, whatever ``.codepilotignore`` says.
    """

    def __init__(self, extra_lines: list[str] | tuple[str, ...] = ()):
        self.lines = [*DEFAULT_PATTERNS, *extra_lines]
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.lines)

    def ignored(self, relpath: str, is_dir: bool = False) -> bool:
        if not relpath:
            return False
        if is_state_path(relpath):
            return True
        # pathspec's patterns are regular expressions whose "." stops at a newline, so a
        # newline in a folder's name hid everything below it from "__pycache__/" or
        # "*.pyc". No pattern holds a newline (they are lines) nor NUL, which "." and
        # "?" match as git matches a newline.
        relpath = relpath.replace("\n", "\x00")
        # A pattern ending in "/" only matches folders; say which this is.
        return self._spec.match_file(relpath + "/" if is_dir else relpath)


def read_ignore_file(root: Path) -> list[str]:
    """The lines of ``<root>/.codepilotignore``; none when it is missing or unreadable."""
    try:
        return (root / IGNORE_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return []


def load_ignore_rules(root: Path) -> IgnoreRules:
    return IgnoreRules(read_ignore_file(root))


def ignore_file_changed(relpaths) -> bool:
    return any(os.path.basename(path) == IGNORE_FILE for path in relpaths)
