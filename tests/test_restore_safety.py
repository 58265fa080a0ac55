"""A restore deletes a local file only on evidence, and overwrites none silently: the sync
command (what a start runs) against moto's real S3 API.

An emptied S3 prefix, or one on another endpoint, with a manifest that says the
workspace was synced, is refused with a message naming endpoint and prefix, every local
file kept; ``--restore-empty-prefix push`` keeps them and has them pushed. When both
sides changed a file, S3's version takes the name and the local one is kept beside it.
"""

import asyncio
import tempfile
from pathlib import Path

import pytest

from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.s3 import S3Store

from .support.s3server import s3_server_fixture
from .support.sync_cli import json_lines, run_sync

pytestmark = pytest.mark.integration

BUCKET = "safety"
PREFIX = "cp"

s3 = s3_server_fixture(buckets=(BUCKET,))


def sync(s3, user: str, *args: str, check: bool = True, endpoint: str = ""):
    env = {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": PREFIX,
        "JUPYTERHUB_USER": user,
    }
    if endpoint:
        env["CODEPILOT_S3_ENDPOINT_URL"] = endpoint
    return run_sync(*args, env=env, check=check)


def restore(s3, user: str, root: Path, *options: str, check: bool = True, endpoint: str = ""):
    return sync(
        s3,
        user,
        "restore",
        "--root",
        str(root),
        "--progress",
        "json",
        "--no-snapshots",
        *options,
        check=check,
        endpoint=endpoint,
    )


def synced_workspace(s3, user: str, count: int = 30) -> Path:
    """A workspace of ``count`` files, pushed, with its manifest: quiet and in sync."""
    root = Path(tempfile.mkdtemp(prefix=f"codepilot-{user}-"))
    for number in range(count):
        (root / "src").mkdir(exist_ok=True)
        (root / "src" / f"f{number}.py").write_text(f"print({number})\n")
    sync(s3, user, "push", "--root", str(root))
    return root


async def sync_status(s3, root: Path, user: str) -> dict:
    async with S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url)) as store:
        return WorkspaceSync(root, store, f"{PREFIX}/users/{user}/default/").status_model()


def local_files(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and ".codepilot" not in path.parts
    }


def empty_prefix(s3, user: str) -> None:
    client = s3.client(direct=True)
    keys = s3.keys(BUCKET, f"{PREFIX}/users/{user}/")
    client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in keys]})


def test_an_emptied_prefix_is_refused_and_deletes_nothing(s3):
    root = synced_workspace(s3, "emptied")
    before = local_files(root)
    empty_prefix(s3, "emptied")

    result = restore(s3, "emptied", root, check=False)
    assert result.returncode == 1
    message = json_lines(result.stdout)[-1]["message"]
    assert f"s3://{BUCKET}/{PREFIX}/users/emptied/default/" in message
    assert s3.endpoint_url in message
    assert local_files(root) == before

    # The admin says S3 was emptied on purpose, or lost: the local files are pushed back.
    restore(s3, "emptied", root, "--restore-empty-prefix", "push")
    assert local_files(root) == before
    sync(s3, "emptied", "push", "--root", str(root))
    keys = s3.keys(BUCKET, f"{PREFIX}/users/emptied/default/")
    assert {f"{PREFIX}/users/emptied/default/{path}" for path in before} <= keys


def test_an_empty_prefix_on_another_endpoint_is_refused_naming_both(s3):
    root = synced_workspace(s3, "moved")
    before = local_files(root)
    empty_prefix(s3, "moved")
    # The same bucket name on another endpoint (here: moto without the relay).
    result = restore(s3, "moved", root, check=False, endpoint=s3.moto_url)
    assert result.returncode == 1
    message = json_lines(result.stdout)[-1]["message"]
    assert s3.moto_url in message and s3.endpoint_url in message
    assert local_files(root) == before


def test_a_file_both_sides_changed_is_kept_beside_not_overwritten(s3):
    root = synced_workspace(s3, "both", count=3)
    key = f"{PREFIX}/users/both/default/src/f1.py"
    s3.client(direct=True).put_object(Bucket=BUCKET, Key=key, Body=b"changed in S3\n")
    (root / "src" / "f1.py").write_text("changed locally, not pushed yet\n")
    (root / "src" / "f2.py").write_text("print(22)\n")  # same size: compared by content
    key2 = f"{PREFIX}/users/both/default/src/f2.py"
    s3.client(direct=True).put_object(Bucket=BUCKET, Key=key2, Body=b"print(33)\n")

    done = json_lines(restore(s3, "both", root).stdout)[-1]
    assert sorted(done["conflicts"]) == ["src/f1.py", "src/f2.py"]
    assert (root / "src" / "f1.py").read_text() == "changed in S3\n"
    kept = root / done["conflicts"]["src/f1.py"]
    assert kept.name.startswith("f1.py.conflict-")
    assert kept.read_text() == "changed locally, not pushed yet\n"
    assert (root / done["conflicts"]["src/f2.py"]).read_text() == "print(22)\n"
    # The server's sync status says so.
    status = asyncio.run(sync_status(s3, root, "both"))
    assert status["conflicts"] == done["conflicts"]
    # The kept copies are new files: the next push stores them too.
    sync(s3, "both", "push", "--root", str(root))
    assert s3.read(BUCKET, f"{PREFIX}/users/both/default/src/{kept.name}") == kept.read_bytes()
