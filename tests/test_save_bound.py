"""A save answers within ``sync_save_timeout`` whatever S3 does: S3 hanging (a paused
server, a black-holed route) or its credentials not renewable (the broker down) give the
documented 503 that names S3, the local copy kept, pushed once S3 answers again. A real
user server in sync mode against moto behind a relay that can hang.
"""

import pytest
from tornado import web

from server_extension.storage.contents import SyncContentsManager
from server_extension.storage.location import WorkspaceLocation
from server_extension.storage.s3 import S3Error, S3Store

from .support.hubtools import free_port, wait_until
from .support.jupyterserver import synced_server_fixture
from .support.s3server import s3_server_fixture

pytestmark = pytest.mark.integration

BUCKET = "bounded"
PREFIX = "cp"
USER = "hana"
KEYS = f"{PREFIX}/users/{USER}/default/"
BOUND = 3  # seconds, to keep the test short; the default is 10

s3 = s3_server_fixture(buckets=(BUCKET,))


server = synced_server_fixture(BUCKET, PREFIX, USER, SYNC_SAVE_TIMEOUT=str(BOUND))


def test_a_save_while_s3_hangs_answers_503_in_time_and_keeps_the_file(server, s3):
    assert server.put_text("essay.md", "draft 1").status_code == 201
    with s3.hang():
        response = server.put_text("essay.md", "draft 2")
        assert response.status_code == 503, response.text
        message = response.json()["message"]
        assert f"S3 did not answer within {BOUND} s" in message
        assert "NOT in S3" in message
        assert (server.root / "essay.md").read_text() == "draft 2"
    # Pushed once S3 answers again.
    wait_until(lambda: s3.read(BUCKET, KEYS + "essay.md") == b"draft 2", 60, 0.2, "the retry")


async def test_credentials_the_broker_cannot_renew_are_an_s3_error(s3, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.delenv("CODEPILOT_S3_CREDENTIALS_EXPIRATION", raising=False)
    broker = f"http://127.0.0.1:{free_port()}/services/codepilot-credentials/api/credentials"
    store = S3Store(WorkspaceLocation(BUCKET, endpoint_url=s3.endpoint_url, credentials_url=broker))
    with pytest.raises(S3Error, match="credential broker is unreachable") as caught:
        async with store:  # the client loads its first credentials
            await store.put_bytes(KEYS + "x.txt", b"x")
    assert caught.value.unreachable and "S3" in str(caught.value)


async def test_a_save_with_the_broker_down_answers_503_naming_s3(s3, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.delenv("CODEPILOT_S3_CREDENTIALS_EXPIRATION", raising=False)
    manager = SyncContentsManager(
        root_dir=str(tmp_path),
        s3_bucket=BUCKET,
        s3_key_prefix=f"{PREFIX}/users/broker-down/default/",
        s3_endpoint_url=s3.endpoint_url,
        s3_credentials_url=f"http://127.0.0.1:{free_port()}/api/credentials",
    )
    model = {"type": "file", "format": "text", "content": "kept"}
    with pytest.raises(web.HTTPError) as caught:
        await manager.save(model, "notes.txt")
    assert caught.value.status_code == 503
    assert "S3" in caught.value.log_message
    assert (tmp_path / "notes.txt").read_text() == "kept"
    await manager.close()
