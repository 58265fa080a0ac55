"""A sync-mode server's life: SIGKILL right after a save loses nothing; SIGTERM flushes.

Each start runs the restore a spawner runs, then the server, as a real process.
"""

import asyncio
import base64
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from codepilot_contracts import defaults, layout
from server_extension.storage.engine import WorkspaceSync
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.restore import restore_workspace
from server_extension.storage.s3 import S3Store

from .support.jupyterserver import start_jupyter_server
from .support.s3server import s3_server_fixture

pytestmark = pytest.mark.integration

BUCKET = "lifecycle"


s3 = s3_server_fixture(buckets=(BUCKET,))


def server_env(s3, user: str) -> dict:
    # No prefix: the servers keep workspaces under the shared default one.
    return {
        **s3.env,
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_WORKSPACE_USER": user,
        "CODEPILOT_SYNC_FLUSH_TIMEOUT": "3",
    }


def restore(s3, user: str, root: Path):
    async def run():
        location = WorkspaceLocation.of_workspace(
            BUCKET, defaults.S3_PREFIX, user, endpoint_url=s3.endpoint_url
        )
        async with S3Store(location) as store:
            return await restore_workspace(store, location, root)

    result = asyncio.run(run())
    assert not result.failed, result.failed
    return result


def test_sigkill_right_after_an_acknowledged_save_loses_nothing(s3, monkeypatch):
    for name, value in s3.env.items():  # the in-process restore uses the AWS chain too
        monkeypatch.setenv(name, value)
    user = "kim"
    same_root = Path(tempfile.mkdtemp(prefix="codepilot-kill-"))
    previous = None
    for round_number in range(20):
        # Even rounds restart on the same disk (one machine), odd ones on a new, empty
        # disk (a new pod): either way the last acknowledged save must be there.
        root = same_root if round_number % 2 == 0 else Path(tempfile.mkdtemp())
        restore(s3, user, root)
        server = start_jupyter_server(root, server_env(s3, user))
        try:
            if previous is not None:
                name, data = previous
                got = server.contents("GET", name, params={"format": "base64"}).json()
                assert base64.b64decode(got["content"]) == data, f"round {round_number}"
                assert (root / name).read_bytes() == data
            data = os.urandom(1000 + round_number * 7919)
            name = f"save-{round_number % 3}.bin"
            model = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
            response = server.contents("PUT", name, json=model)
            assert response.status_code in (200, 201), response.text
            previous = (name, data)
        finally:
            server.kill()
    assert (
        s3.read(BUCKET, layout.workspace_prefix(defaults.S3_PREFIX, user) + previous[0])
        == previous[1]
    )


def test_sigterm_flushes_pending_changes(s3):
    user = "lee"
    keys = layout.workspace_prefix(defaults.S3_PREFIX, user)
    root = Path(tempfile.mkdtemp(prefix="codepilot-term-"))
    server = start_jupyter_server(root, server_env(s3, user))
    # Written behind the server's back and stopped at once: no time for the watcher.
    for number in range(20):
        (root / f"late-{number}.txt").write_text(f"late {number}")
    assert server.stop(signal.SIGTERM) == 0
    for number in range(20):
        assert s3.read(BUCKET, f"{keys}late-{number}.txt") == f"late {number}".encode()
    assert "workspace flushed" in server.log()


def test_sigterm_during_an_outage_names_what_was_not_flushed_and_loses_nothing(s3):
    user = "max"
    keys = layout.workspace_prefix(defaults.S3_PREFIX, user)
    root = Path(tempfile.mkdtemp(prefix="codepilot-term-"))
    server = start_jupyter_server(root, server_env(s3, user))
    with s3.outage():
        (root / "stranded.txt").write_text("kept")
        started = time.monotonic()
        server.stop(signal.SIGTERM, timeout=60)
        stop_seconds = time.monotonic() - started
    log = server.log()
    assert "could not push to S3 before stopping" in log
    assert "stranded.txt" in log
    assert s3.read(BUCKET, f"{keys}stranded.txt") is None
    assert (root / "stranded.txt").read_text() == "kept"
    assert stop_seconds < 60
    # The next start pushes what the last one could not.
    server = start_jupyter_server(root, server_env(s3, user))
    try:
        deadline = time.monotonic() + 30
        while s3.read(BUCKET, f"{keys}stranded.txt") != b"kept":
            assert time.monotonic() < deadline, "stranded.txt never reached S3"
            time.sleep(0.2)
    finally:
        server.stop()


async def test_a_flush_cut_short_still_names_every_file_it_left(s3):
    root = Path(tempfile.mkdtemp(prefix="codepilot-flush-"))
    (root / "first.txt").write_text("one")
    (root / "second.txt").write_text("two")
    async with S3Store(
        WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url), connect_timeout=1
    ) as store:
        sync = WorkspaceSync(root, store, layout.workspace_prefix(defaults.S3_PREFIX, "nina"))
        with s3.outage():
            left = await sync.flush(time_limit=0)  # out of time before any push
    assert left == ["first.txt", "second.txt"]
    assert sync.status.unflushed == left


def test_a_terminal_write_after_an_acknowledged_save_survives_sigkill(s3, monkeypatch):
    for name, value in s3.env.items():  # the in-process restore uses the AWS chain too
        monkeypatch.setenv(name, value)
    user = "ola"
    root = Path(tempfile.mkdtemp(prefix="codepilot-kill-"))
    restore(s3, user, root)
    server = start_jupyter_server(root, server_env(s3, user))
    try:
        for number in range(5):
            saved = server.put_text(f"notes{number}.md", "saved in the editor")
            assert saved.status_code in (200, 201), saved.text
            # The manifest on disk knows the acknowledged version before the answer.
            (root / f"notes{number}.md").write_text("then changed from a terminal")
    finally:
        server.kill()  # before the watcher pushes the terminal's writes
    result = restore(s3, user, root)
    assert result.conflicts == {}
    for number in range(5):
        assert (root / f"notes{number}.md").read_text() == "then changed from a terminal"
