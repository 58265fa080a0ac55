"""Bursts of new folders, as ``git clone``, ``npm create`` or ``unzip`` make them, reach S3.

A running sync-mode server mirrors a tree a terminal makes at once, ``python -m
server_extension.sync push`` uploads thousands of files in hundreds of new folders, and
a sync that stops making progress says so in its log and at ``/codepilot/api/sync``.
Every wait is bounded, so a sync that hangs fails the test instead of hanging it.
"""

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.s3 import S3Store

from .support.folders import ancestors
from .support.hubtools import REPO_ROOT, wait_until
from .support.jupyterserver import start_jupyter_server
from .support.s3server import CREDENTIALS, s3_server_fixture
from .support.terminals import run_in_terminal

BUCKET = "bursts"
PREFIX = "cp"

s3 = s3_server_fixture(buckets=(BUCKET,))


def keys_of(user: str) -> str:
    return f"{PREFIX}/users/{user}/default/"


def server_env(s3, user: str, **settings) -> dict:
    return {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_PREFIX": PREFIX,
        "CODEPILOT_WORKSPACE_USER": user,
        **settings,
    }


MARKER = "/.s3keep"


def disk_layout(root: Path, prefix: str) -> tuple[set[str], set[str]]:
    """(file keys, folder keys) a workspace of plain files and folders maps to."""
    files, folders = set(), set()
    for folder, dirs, names in os.walk(root):
        dirs[:] = [name for name in dirs if name != ".codepilot"]
        relative = Path(folder).relative_to(root).as_posix()
        if relative != ".":
            folders.add(f"{prefix}{relative}")
        files.update(f"{prefix}{Path(folder, name).relative_to(root).as_posix()}" for name in names)
    return files, folders


def s3_layout(s3, prefix: str) -> tuple[set[str], set[str]]:
    """(file keys, folder keys) S3 holds: a folder is there when an object lies below it,
    its files or, when it holds nothing, its marker."""
    keys = s3.keys(BUCKET, prefix)
    files = {key for key in keys if not key.endswith(MARKER)}
    folders = {prefix + folder for key in keys for folder in ancestors(key[len(prefix) :])}
    return files, folders


def missing_in_s3(s3, root: Path, prefix: str) -> set[str]:
    on_disk, in_s3 = disk_layout(root, prefix), s3_layout(s3, prefix)
    return (on_disk[0] - in_s3[0]) | (on_disk[1] - in_s3[1])


@pytest.fixture(scope="module")
def server(s3):
    root = Path(tempfile.mkdtemp(prefix="codepilot-burst-"))
    running = start_jupyter_server(root, server_env(s3, "burst"))
    yield running
    running.stop()


@pytest.mark.integration
def test_a_terminal_making_40_folders_with_240_files_at_once_reaches_s3(server, s3):
    """The issue's reproduction, typed into a real terminal of a running server."""
    with server.open_terminal() as terminal:
        run_in_terminal(
            terminal,
            f"cd {server.root} && for i in $(seq 0 19); do for j in 0 1; do "
            "mkdir -p proj/m$i/s$j; for k in 0 1 2 3 4 5; do echo $i$j$k > proj/m$i/s$j/f$k.txt; "
            'done; done; done; echo MA""DE',
            "MADE",
        )
    prefix = keys_of("burst")
    files, _ = disk_layout(server.root, prefix)
    assert len(files) == 240
    wait_until(lambda: not missing_in_s3(s3, server.root, prefix), 60, 0.25, "240 files in S3")
    assert s3.read(BUCKET, prefix + "proj/m19/s1/f5.txt") == b"1915\n"
    status = wait_until(
        lambda: (s := server.sync_status())["state"] == "idle" and s["pending"] == 0 and s,
        30,
        0.2,
        "an idle sync",
    )
    assert status["last_error"] is None
    assert s3_layout(s3, prefix) == disk_layout(server.root, prefix)


@pytest.mark.integration
def test_cli_push_of_2000_files_in_280_new_folders_finishes(s3):
    root = Path(tempfile.mkdtemp(prefix="codepilot-push-"))
    folders = [f"pkg{top}/mod{sub}" for top in range(20) for sub in range(13)]
    for number in range(2000):
        folder = root / folders[number % len(folders)]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{number}.txt").write_text(f"content {number}\n")
    prefix = keys_of("pusher")
    files, folder_keys = disk_layout(root, prefix)
    assert len(folder_keys) == 280
    try:
        result = subprocess.run(
            [sys.executable, "-m", "server_extension.sync", "push", "--root", str(root)],
            env={**os.environ, **server_env(s3, "pusher")},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"push did not finish in {expired.timeout}s: {expired.stderr}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["failed"] == 0
    # Every folder holds files: they make it exist in S3, with no marker of its own.
    assert s3.keys(BUCKET, prefix) == files
    assert s3_layout(s3, prefix) == (files, folder_keys)
    last = f"{folders[1999 % len(folders)]}/file1999.txt"
    assert s3.read(BUCKET, prefix + last) == b"content 1999\n"


@pytest.mark.integration
def test_a_sync_without_progress_says_stalled_then_recovers(s3):
    user = "staller"
    root = Path(tempfile.mkdtemp(prefix="codepilot-stall-"))
    settings = {"CODEPILOT_SYNC_STALL_TIMEOUT": "1"}
    server = start_jupyter_server(root, server_env(s3, user, **settings))
    try:
        wait_until(lambda: server.sync_status()["state"] == "idle", 30, 0.1, "idle")
        assert server.sync_status()["stalled_since"] is None
        with s3.outage():
            (root / "stuck").mkdir()
            for number in range(5):
                (root / "stuck" / f"file{number}.txt").write_text(f"{number}")
            status = wait_until(
                lambda: (
                    (s := server.sync_status())["state"] == "stalled"
                    and s["last_error"] is not None
                    and s
                ),
                60,
                0.1,
                "a stalled sync",
            )
            assert status["pending"] >= 1
            assert status["stalled_since"] is not None
            assert status["stall_timeout"] == 1
            assert "S3" in status["last_error"]["message"]
            wait_until(lambda: "no progress" in server.log(), 30, 0.1, "the stall warning")
        status = wait_until(
            lambda: (s := server.sync_status())["state"] == "idle" and s["pending"] == 0 and s,
            60,
            0.2,
            "an idle sync after the outage",
        )
        assert status["stalled_since"] is None
        assert s3_layout(s3, keys_of(user)) == disk_layout(root, keys_of(user))
        wait_until(lambda: "progress again" in server.log(), 10, 0.1, "the recovery line")
        warning = next(line for line in server.log().splitlines() if "no progress" in line)
        assert "WARNING" in warning or "[W " in warning, warning
    finally:
        server.stop()


async def test_pushes_hanging_on_an_s3_that_never_answers_count_as_stalled(caplog, monkeypatch):
    """Not only failures: pushes in flight that never finish are a stall too."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    accepted = []
    stop = threading.Event()

    def accept():
        silent.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(silent.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="codepilot-hang-"))
    (root / "waiting.txt").write_text("waiting")
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    store = S3Store(
        WorkspaceLocation(BUCKET, endpoint_url=endpoint, region="us-east-1"),
        read_timeout=600,
        max_attempts=1,
    )
    sync = WorkspaceSync(root, store, keys_of("hanger"), stall_timeout=60)
    push = asyncio.create_task(sync.push_tree(""))
    try:
        with caplog.at_level(logging.INFO, logger=sync.log.name):
            for _ in range(3000):  # the push reaches the silent server
                if sync.pending:
                    break
                await asyncio.sleep(0.01)
            # The clock is given, not waited for: the machine may be slow.
            last_progress = sync.status.last_progress
            sync.check_progress(now=last_progress + 1)
            assert sync.status_model()["state"] != "stalled"  # just started
            sync.check_progress(now=last_progress + 61)
            status = sync.status_model()
            assert status["state"] == "stalled"
            assert status["pending_paths"] == ["waiting.txt"]
            assert status["stalled_since"] is not None
            assert status["last_error"] is None  # nothing failed: it hangs
            assert any("no progress" in record.message for record in caplog.records)
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert any("waiting.txt" in record.message for record in warnings)
    finally:
        push.cancel()
        await asyncio.gather(push, return_exceptions=True)
        await store.close()
        stop.set()
        silent.close()
        for connection in accepted:
            connection.close()
    with caplog.at_level(logging.INFO, logger=sync.log.name):
        sync.check_progress()  # nothing pending any more
    assert sync.status_model()["state"] != "stalled"
    assert any("progress again" in record.message for record in caplog.records)
