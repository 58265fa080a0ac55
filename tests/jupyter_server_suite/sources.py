"""jupyter-server's own tests, from the source distribution of the installed version.

pip fetches the sdist from PyPI (``pip download --no-binary :all: --no-deps``) and its
``tests/`` folder and ``pyproject.toml`` (the suite's pytest settings) are unpacked
under the venv, once per version; nothing of it enters the repository.

    python tests/jupyter_server_suite/sources.py    # fetch if needed, print the folder
"""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

DISTRIBUTION = "jupyter-server"
CACHE = Path(sys.prefix) / "upstream"
CONTENTS_API_TESTS = "tests/services/contents/test_api.py"


def installed_version() -> str:
    return importlib.metadata.version(DISTRIBUTION)


def member_target(name: str, top: str) -> PurePosixPath | None:
    """Where an sdist member goes below the unpacked folder, or None to leave it out:
    only ``tests/`` and ``pyproject.toml``, and never a path that climbs out."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != (top,):
        return None
    inner = PurePosixPath(*path.parts[1:]) if len(path.parts) > 1 else None
    if inner is None or not (inner.parts[0] == "tests" or inner == PurePosixPath("pyproject.toml")):
        return None
    return inner


def unpack_tests(sdist: Path, destination: Path) -> None:
    """Regular files and folders only: an sdist is data from the network."""
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            inner = member_target(member.name, top)
            if inner is None or not (member.isfile() or member.isdir()):
                continue
            target = destination.joinpath(*inner.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)


def upstream_source(cache: Path = CACHE, version: str | None = None) -> Path:
    """The unpacked tests of jupyter-server ``version`` (the installed one by default)."""
    version = version or installed_version()
    folder = cache / f"jupyter_server-{version}"
    if (folder / CONTENTS_API_TESTS).is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as scratch:
        scratch = Path(scratch)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", "--dest", str(scratch)),
                f"{DISTRIBUTION}=={version}",
            ],
            check=True,
        )
        (sdist,) = scratch.glob("*.tar.gz")
        unpacked = scratch / "unpacked"
        unpack_tests(sdist, unpacked)
        if not (unpacked / CONTENTS_API_TESTS).is_file():
            raise RuntimeError(f"{sdist.name} has no {CONTENTS_API_TESTS}")
        try:
            os.rename(unpacked, folder)
        except OSError:
            if not (folder / CONTENTS_API_TESTS).is_file():  # not a concurrent fetch
                raise
    return folder


if __name__ == "__main__":
    print(upstream_source())
