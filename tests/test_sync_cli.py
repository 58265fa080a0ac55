"""``python -m server_extension.sync``: restore, push, pack, snapshot, status and
seed-starters, run as the init container and the spawner run them, against a real S3
API on loopback."""

import json
import tempfile
from pathlib import Path

import pytest

from server_extension.starters import starter_dir

from .support.s3server import s3_server_fixture
from .support.sync_cli import json_lines, run_sync

pytestmark = pytest.mark.integration

BUCKET = "cli-workspaces"
PREFIX = "cp"
# The stored name of the starters folder, kept from before the rename: existing
# deployments' starters are there.
STARTERS = f"{PREFIX}/templates"


s3 = s3_server_fixture(buckets=(BUCKET,))


def sync_command(s3, *args, user="carol", server_name="", check=True, env=None):
    """The sync command on this module's bucket and prefix, as ``user``'s server."""
    command_env = {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": PREFIX,
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server_name,
        **(env or {}),
    }
    return run_sync(*args, env=command_env, check=check)


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="codepilot-restore-"))


def failed_restore(s3, *options, user: str) -> str:
    """Restore into a fresh folder that must fail: exit 1, the error as the last line."""
    result = sync_command(
        s3,
        "restore",
        "--root",
        str(fresh_dir()),
        "--progress",
        "json",
        *options,
        user=user,
        check=False,
    )
    assert result.returncode == 1
    last = json_lines(result.stdout)[-1]
    assert last["event"] == "error"
    return last["message"]


def test_seed_starters_uploads_every_starter(s3):
    result = sync_command(s3, "seed-starters")
    assert "flask:" in result.stdout
    keys = s3.keys(BUCKET, f"{STARTERS}/")
    for name in ("python", "flask", "node-express", "react-vite"):
        local = {
            path.relative_to(starter_dir(name)).as_posix()
            for path in starter_dir(name).rglob("*")
            if path.is_file()
        }
        assert {f"{STARTERS}/{name}/{path}" for path in local} <= keys
    assert f"{STARTERS}/react-vite/vite.config.js" in keys


def test_first_start_copies_the_starter_then_restores_with_progress(s3):
    s3.client(direct=True).put_object(
        Bucket=BUCKET, Key=f"{STARTERS}/flask/EXTRA.md", Body=b"from the bucket"
    )
    root = fresh_dir()
    result = sync_command(
        s3,
        "restore",
        "--root",
        str(root),
        "--starter",
        "flask",
        "--progress",
        "json",
        server_name="lab",
    )
    events = json_lines(result.stdout)
    assert events[-1]["event"] == "done"
    assert events[-1]["starter"] == "flask"
    progress = [event for event in events if event["event"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] == events[-1]["total"]
    assert all(event["done"] <= event["total"] for event in progress)
    # The bucket's starter wins over the packaged one.
    assert (root / "EXTRA.md").read_text() == "from the bucket"
    assert (root / "app.py").read_text() == (starter_dir("flask") / "app.py").read_text()
    keys = s3.keys(BUCKET, f"{PREFIX}/users/carol/lab/")
    assert f"{PREFIX}/users/carol/lab/app.py" in keys
    assert f"{PREFIX}/users/carol/lab/.s3keep" in keys


def test_packaged_starter_when_the_bucket_has_none(s3):
    root = fresh_dir()
    sync_command(
        s3,
        "restore",
        "--root",
        str(root),
        "--starter",
        "python",
        "--s3-prefix",
        "other",
        user="dan",
    )
    assert (root / "main.py").read_text() == (starter_dir("python") / "main.py").read_text()
    assert "other/users/dan/default/main.py" in s3.keys(BUCKET, "other/")


def test_unknown_starter_is_a_clear_error(s3):
    assert "cobol" in failed_restore(s3, "--starter", "cobol", user="erin")


def test_old_names_of_the_starter_settings_still_work(s3):
    # seed-templates, --template and CODEPILOT_TEMPLATE: the names before "starter".
    assert "python:" in sync_command(s3, "seed-templates", "python").stdout
    by_option = fresh_dir()
    sync_command(s3, "restore", "--root", str(by_option), "--template", "python", user="gil")
    by_variable = fresh_dir()
    env = {"CODEPILOT_TEMPLATE": "python"}
    sync_command(s3, "restore", "--root", str(by_variable), user="hal", env=env)
    # The new variable wins when a hub sets both.
    both = fresh_dir()
    env = {"CODEPILOT_TEMPLATE": "python", "CODEPILOT_STARTER": "flask"}
    sync_command(s3, "restore", "--root", str(both), user="ivy", env=env)
    for root in (by_option, by_variable):
        assert (root / "main.py").is_file()
    assert (both / "app.py").is_file() and not (both / "main.py").exists()


def test_incremental_restore_fetches_only_what_changed(s3):
    client = s3.client(direct=True)
    keys = f"{PREFIX}/users/frank/default/"
    for number in range(50):
        client.put_object(Bucket=BUCKET, Key=f"{keys}src/f{number}.txt", Body=b"v1 %d" % number)
    root = fresh_dir()
    first = json_lines(
        sync_command(s3, "restore", "--root", str(root), "--progress", "json", user="frank").stdout
    )[-1]
    assert first["downloaded"] == 50 and first["total"] == 50

    client.put_object(Bucket=BUCKET, Key=f"{keys}src/f7.txt", Body=b"v2")
    client.delete_object(Bucket=BUCKET, Key=f"{keys}src/f8.txt")
    (root / "src" / "f9.txt").write_text("edited locally")  # S3 still has v1
    (root / "mine.txt").write_text("new locally")
    second = json_lines(
        sync_command(s3, "restore", "--root", str(root), "--progress", "json", user="frank").stdout
    )[-1]
    assert second["downloaded"] == 1
    assert second["removed"] == 1
    assert second["unchanged"] == 47
    assert second["local_changes"] == 1
    assert (root / "src" / "f7.txt").read_text() == "v2"
    assert not (root / "src" / "f8.txt").exists()
    assert (root / "src" / "f9.txt").read_text() == "edited locally"
    assert (root / "mine.txt").read_text() == "new locally"

    status = json.loads(sync_command(s3, "status", "--root", str(root), user="frank").stdout)
    assert status["to_push"] == ["mine.txt", "src/f9.txt"]
    assert status["to_restore"] == []

    sync_command(s3, "push", "--root", str(root), user="frank")
    assert s3.read(BUCKET, f"{keys}src/f9.txt") == b"edited locally"
    assert s3.read(BUCKET, f"{keys}mine.txt") == b"new locally"
    status = json.loads(sync_command(s3, "status", "--root", str(root), user="frank").stdout)
    assert status["to_push"] == [] and status["in_sync"] == 50


def test_restore_without_a_manifest_compares_content(s3):
    client = s3.client(direct=True)
    keys = f"{PREFIX}/users/gina/default/"
    client.put_object(Bucket=BUCKET, Key=f"{keys}same.txt", Body=b"same")
    client.put_object(Bucket=BUCKET, Key=f"{keys}differs.txt", Body=b"remote")
    root = fresh_dir()
    (root / "same.txt").write_text("same")
    (root / "differs.txt").write_text("locall")  # same size, other bytes
    done = json_lines(
        sync_command(s3, "restore", "--root", str(root), "--progress", "json", user="gina").stdout
    )[-1]
    assert done["unchanged"] == 1 and done["downloaded"] == 1
    assert (root / "differs.txt").read_text() == "remote"


def test_hostile_object_keys_never_leave_the_workspace(s3):
    client = s3.client(direct=True)
    keys = f"{PREFIX}/users/hank/default/"
    client.put_object(Bucket=BUCKET, Key=f"{keys}../../escape.txt", Body=b"x")
    client.put_object(Bucket=BUCKET, Key=f"{keys}ok.txt", Body=b"ok")
    parent = fresh_dir()
    root = parent / "ws"
    result = sync_command(
        s3, "restore", "--root", str(root), "--progress", "json", user="hank", check=False
    )
    # Reported, not silently skipped; the server still starts.
    assert result.returncode == 0
    assert list(json_lines(result.stdout)[-1]["skipped"]) == [f"{keys}../../escape.txt"]
    assert "escape.txt" in result.stderr
    assert (root / "ok.txt").read_text() == "ok"
    assert not (parent / "escape.txt").exists()
    assert not (parent.parent / "escape.txt").exists()


def test_s3_unreachable_is_reported_as_such(s3):
    with s3.outage():
        message = failed_restore(s3, user="ivan")
    assert "S3 is unreachable" in message


def test_missing_bucket_setting_is_a_clear_error(s3):
    result = sync_command(s3, "push", env={"CODEPILOT_S3_BUCKET": ""}, check=False)
    assert result.returncode != 0
    assert "CODEPILOT_S3_BUCKET" in result.stderr


def test_a_restore_without_a_user_says_so_in_its_error_record(s3):
    # The spawner shows the last record: it must name what to set, not end without one.
    message = failed_restore(s3, user="")
    assert message == ("no user: set CODEPILOT_WORKSPACE_USER, JUPYTERHUB_USER or --workspace-user")


def test_pack_and_snapshot_commands_leave_what_the_next_restore_uses(s3):
    keys = f"{PREFIX}/users/jill/default/"
    root = fresh_dir()
    for index in range(20):
        (root / f"small{index}.txt").write_text(f"small file {index}")
    (root / "package-lock.json").write_text('{"lockfileVersion": 3}')
    (root / "node_modules" / "left-pad").mkdir(parents=True)
    (root / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1;")

    packed = json.loads(sync_command(s3, "pack", "--root", str(root), user="jill").stdout)
    assert packed["failed"] == 0 and packed["packed"] == 21  # the lock file is small too
    assert {f"{keys}.codepilot/pack/pack.tar", f"{keys}.codepilot/pack/index.json"} <= (
        s3.keys(BUCKET, keys)
    )

    snapshot = json.loads(sync_command(s3, "snapshot", "--root", str(root), user="jill").stdout)
    assert snapshot["failed"] == []
    assert any(
        key.startswith(f"{keys}.codepilot/snapshots/node_modules/") and key.endswith(".tar.gz")
        for key in s3.keys(BUCKET, keys)
    )

    again = fresh_dir()
    done = json_lines(
        sync_command(s3, "restore", "--root", str(again), "--progress", "json", user="jill").stdout
    )[-1]
    assert done["from_pack"] == 21 and done["snapshots"] == {"node_modules": "restored"}
    assert (again / "node_modules" / "left-pad" / "index.js").read_text() == "module.exports = 1;"
    assert (again / "small7.txt").read_text() == "small file 7"
