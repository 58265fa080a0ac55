"""One machine with workspaces in S3: the hub passes the settings, restores with progress."""

import json
import threading
from pathlib import Path

import pytest
import requests

from .support.hubtools import save_text, start_hub, wait_until
from .support.s3hub import s3_hub_fixture
from .support.s3server import s3_server_fixture

pytestmark = pytest.mark.integration

BUCKET = "classroom"


s3 = s3_server_fixture(buckets=(BUCKET,))
s3_hub = s3_hub_fixture(BUCKET, "course")


def follow_progress(hub, user, server_name, into: list):
    """Collect the spawn's progress messages, as the spawn page shows them."""
    url = f"{hub.url}/hub/api/users/{user}/servers/{server_name}/progress"
    with requests.get(url, headers={"Authorization": f"token {hub.token}"}, stream=True) as r:
        for line in r.iter_lines():
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                into.append(event.get("message", ""))
                if event.get("ready") or event.get("failed"):
                    return


def test_a_new_workspace_starts_from_its_starter_with_progress(s3_hub, s3):
    s3_hub.create_user("frank")
    responses = []
    spawn = threading.Thread(
        target=lambda: responses.append(
            s3_hub.api("POST", "/users/frank/servers/web", json={"starter": "flask"})
        )
    )
    spawn.start()

    def pending():
        server = s3_hub.api("GET", "/users/frank").json()["servers"].get("web")
        return server and server["pending"] == "spawn"

    wait_until(pending, 30, 0.05, "the spawn to be pending")
    messages = []
    follow_progress(s3_hub, "frank", "web", messages)  # replays the events so far
    spawn.join(60)
    assert responses[0].status_code in (201, 202), responses[0].text

    assert "Restoring workspace" in messages
    assert any(
        m.startswith("Restoring workspace: ") and m.endswith((" MB", " files")) for m in messages
    ), messages
    workspace = s3_hub.data_dir / "workspaces" / "frank" / "web"
    assert (workspace / "app.py").exists()
    assert "course/users/frank/web/app.py" in s3.keys(BUCKET, "course/users/frank/web/")


def test_saves_reach_s3_and_survive_a_lost_disk(s3_hub, s3):
    s3_hub.create_user("grace")
    s3_hub.start_server("grace")
    token = s3_hub.user_token("grace")
    url = s3_hub.server_url("grace")
    saved = save_text(url, "essay.md", "in S3", {"Authorization": f"token {token}"})
    assert saved.status_code == 201, saved.text
    assert s3.read(BUCKET, "course/users/grace/default/essay.md") == b"in S3"

    s3_hub.stop_server("grace")
    workspace = s3_hub.data_dir / "workspaces" / "grace" / "default"
    (workspace / "essay.md").unlink()  # as if the machine lost its disk
    s3_hub.start_server("grace")
    restored = requests.get(
        f"{url}api/contents/essay.md", headers={"Authorization": f"token {token}"}
    )
    assert restored.json()["content"] == "in S3"
    status = requests.get(
        f"{url}codepilot/api/sync", headers={"Authorization": f"token {token}"}
    ).json()
    assert status["storage"] == "sync"
    assert status["location"] == f"s3://{BUCKET}/course/users/grace/default/"


def test_with_a_role_each_server_gets_its_own_credentials_not_the_hubs(s3):
    hub = start_hub(
        env={
            **s3.env,
            "CODEPILOT_S3_BUCKET": BUCKET,
            "CODEPILOT_S3_ENDPOINT_URL": s3.moto_url,
            "CODEPILOT_S3_ROLE_ARN": "arn:aws:iam::123456789012:role/codepilot-users",
        }
    )
    try:
        hub.create_user("ivan")
        server = hub.start_server("ivan")
        token = hub.user_token("ivan")
        headers = {"Authorization": f"token {token}"}
        saved = save_text(hub.server_url("ivan"), "mine.txt", "scoped", headers)
        assert saved.status_code == 201, saved.text
        assert s3.read(BUCKET, "codepilot/users/ivan/default/mine.txt") == b"scoped"
        raw = Path(f"/proc/{server['state']['pid']}/environ").read_text()
        environ = dict(entry.split("=", 1) for entry in raw.split("\0") if "=" in entry)
        assert "AWS_SECRET_ACCESS_KEY" not in environ
        assert environ["CODEPILOT_CREDENTIALS_URL"].endswith("/api/credentials")
        assert "Minted S3 credentials for ivan" in hub.log()
    finally:
        hub.stop()
