"""The npm cache the tests share, in ``test-artifacts/npm-cache``: npm reaches the registry
once for a starter's packages, later installs come from the cache.

A student's home can be given a copy, as if they had installed these packages before,
so a first Run's ``npm install`` (the real command, its real output) takes seconds.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from server_extension.starters import starter_dir

from .hubtools import REPO_ROOT

NPM_CACHE = REPO_ROOT / "test-artifacts" / "npm-cache"
# What a student's npm reads from their home: the cache first, the registry only for
# what it lacks.
PREFER_CACHE_NPMRC = "prefer-offline=true\n"


def _packages_digest(starter: str) -> str:
    """What the starter asks npm for: a changed package.json fills the cache again."""
    folder = starter_dir(starter)
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = folder / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


def install_from_cache(folder: Path | str, *options: str) -> None:
    """``npm install`` in ``folder``, from ``NPM_CACHE`` first (the registry for what it
    lacks, which the cache then keeps)."""
    install = ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline"]
    subprocess.run(
        [*install, *options, "--cache", str(NPM_CACHE)],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=600,
    )


def fill_npm_cache(starter: str) -> Path:
    """``NPM_CACHE`` with every package ``starter`` installs (installed once in a scratch
    copy; a later call for the same package.json does nothing)."""
    stamp = NPM_CACHE / f".filled-{starter}-{_packages_digest(starter)}"
    if stamp.exists():
        return NPM_CACHE
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"codepilot-npm-{starter}-") as scratch:
        shutil.copytree(starter_dir(starter), scratch, dirs_exist_ok=True)
        install_from_cache(scratch, "--ignore-scripts")
    stamp.touch()
    return NPM_CACHE


def give_npm_cache(home: Path) -> None:
    """A copy of ``NPM_CACHE`` as ``home``'s own npm cache, owned by the home's owner, and
    an ``.npmrc`` that prefers it to the registry."""
    owner = home.stat()
    cache = home / ".npm"
    subprocess.run(["cp", "-r", f"{NPM_CACHE}/.", str(cache)], check=True)
    (home / ".npmrc").write_text(PREFER_CACHE_NPMRC)
    for path in (cache, home / ".npmrc"):
        subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(path)], check=True)
    os.chmod(home / ".npmrc", 0o644)
