"""The credential broker on a real hub, with moto's STS on loopback.

The one-machine hub is started as ``make up`` does, with the broker service, the server
token scopes, the classroom groups and the teacher roles added by the same functions the
Kubernetes hub config uses. A user server renews its keys from a terminal with its own
``JUPYTERHUB_API_TOKEN``; other tokens are refused. The same hub shows that teachers
reach their students' servers and that preview use reaches the hub as activity.
"""

import json
from datetime import UTC, datetime

import boto3
import pytest
import requests

from codepilot_spawner.s3settings import S3Settings
from codepilot_spawner.services.broker import SERVICE_NAME

from .support.hubtools import make_data_dir, save_text, start_hub, wait_until
from .support.s3server import CREDENTIALS, s3_server_fixture
from .support.terminals import run_in_terminal

pytestmark = pytest.mark.integration

BUCKET = "workspaces"
VALUES = {"hub": {"groups": {"class-a": {"teachers": ["tina"], "students": ["alice", "bob"]}}}}

# The one-machine config runs the broker (a bucket and a role are set); the classroom
# comes from Helm-style values, as on Kubernetes.
EXTRA_CONFIG = """
import json
import os

from codepilot_spawner.kubernetes.values import classroom_groups, teacher_roles

values = json.loads(os.environ["TEST_VALUES"])
# A sub-config extends the lists of the main config (traitlets merges them).
c.JupyterHub.load_roles.extend(teacher_roles(values))
c.JupyterHub.load_groups = classroom_groups(values)
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}
"""


moto = s3_server_fixture(relay=False, buckets=(BUCKET,))


@pytest.fixture(scope="module")
def broker_hub(moto):
    data_dir = make_data_dir()
    extra = data_dir / "extra_config.py"
    extra.write_text(EXTRA_CONFIG)
    settings = S3Settings(
        bucket=BUCKET,
        endpoint_url=moto.moto_url,
        role_arn="arn:aws:iam::123456789012:role/codepilot-users",
        duration_seconds=900,
    )
    # A bucket and a role: the one-machine config starts the broker.
    hub = start_hub(
        data_dir,
        env={
            **CREDENTIALS,
            **settings.to_environ(),
            "CODEPILOT_HUB_EXTRA_CONFIG": str(extra),
            "TEST_VALUES": json.dumps(VALUES),
        },
    )
    for name in ("alice", "bob", "tina", "carol"):
        hub.create_user(name)
    yield hub
    hub.stop()


def credentials_url(hub, user: str = "") -> str:
    url = f"{hub.service_url(SERVICE_NAME)}api/credentials"
    return f"{url}/{user}" if user else url


def ask(hub, token: str | None, user: str = ""):
    headers = {"Authorization": f"token {token}"} if token else {}
    url = credentials_url(hub, user)

    def answered():
        try:
            response = requests.get(url, headers=headers, timeout=30)
        except requests.ConnectionError:
            return None
        # (A 4xx Response is falsy: wrap it.)
        return None if response.status_code in (502, 503, 404) else [response]

    # The broker starts with the hub; give it the time to listen once.
    return wait_until(answered, 30, 0.2, "the credential broker")[0]


def test_user_gets_own_short_lived_credentials(broker_hub, moto):
    token = broker_hub.user_token("alice")
    response = ask(broker_hub, token)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    metadata = response.json()
    assert set(metadata) == {"access_key", "secret_key", "token", "expiry_time"}
    assert metadata["access_key"] != CREDENTIALS["AWS_ACCESS_KEY_ID"]
    expiry = datetime.fromisoformat(metadata["expiry_time"])
    assert 0 < (expiry - datetime.now(UTC)).total_seconds() <= 900
    # They are STS credentials moto knows: it says whose session they are.
    sts = boto3.client(
        "sts",
        endpoint_url=moto.moto_url,
        region_name="us-east-1",
        aws_access_key_id=metadata["access_key"],
        aws_secret_access_key=metadata["secret_key"],
        aws_session_token=metadata["token"],
    )
    assert sts.get_caller_identity()["Arn"].endswith("assumed-role/codepilot-users/codepilot-alice")
    named = ask(broker_hub, token, "alice")
    assert named.status_code == 200 and named.json()["access_key"] != metadata["access_key"]


def test_user_b_cannot_get_user_a_credentials(broker_hub):
    bob = broker_hub.user_token("bob")
    refused = ask(broker_hub, bob, "alice")
    assert refused.status_code == 403
    assert refused.json()["message"] == "a server gets the credentials of its own user only"
    assert "access_key" not in refused.text
    own = ask(broker_hub, bob)
    assert own.status_code == 200


def test_tokens_that_are_not_a_users_are_refused(broker_hub):
    assert ask(broker_hub, None).status_code == 401
    assert ask(broker_hub, "not-a-token-the-hub-knows").status_code == 401
    # The automation service's token: a service, not a user server.
    assert ask(broker_hub, broker_hub.token).status_code == 403
    # A token of alice's without the right to call the broker.
    response = broker_hub.api(
        "POST", "/users/alice/tokens", json={"scopes": ["read:users:name!user=alice"]}
    )
    response.raise_for_status()
    assert ask(broker_hub, response.json()["token"]).status_code == 403


def test_server_renews_with_its_own_token(broker_hub):
    token = broker_hub.user_token("alice")
    broker_hub.start_server("alice")
    with broker_hub.open_terminal("alice", token) as ws:
        command = (
            'python -c "import asyncio, json, os; '
            "from server_extension.credential_refresher import CredentialRefresher; "
            "r = CredentialRefresher.for_url(os.environ['CODEPILOT_CREDENTIALS_URL']); "
            "m = asyncio.run(r.current()); "
            "print('RENEWED-' + str(r.renewals), m['access_key'][:4], 'END-' + 'OF-IT')\""
        )
        output = run_in_terminal(ws, command, "END-OF-IT", timeout=60)
    assert "RENEWED-1 " in output, output


def test_workspace_sync_uses_the_servers_broker_credentials(broker_hub, moto):
    def minted_for_alice():
        return broker_hub.log().count("Minted S3 credentials for alice")

    before = minted_for_alice()
    token = broker_hub.user_token("alice")
    broker_hub.start_server("alice", "synced")
    saved = save_text(
        broker_hub.server_url("alice", "synced"),
        "brokered.txt",
        "via the broker",
        {"Authorization": f"token {token}"},
    )
    assert saved.status_code == 201, saved.text
    assert moto.read(BUCKET, "codepilot/users/alice/synced/brokered.txt") == b"via the broker"
    # The restore before the start and the server's own S3 client asked the broker.
    assert minted_for_alice() >= before + 2


def test_teacher_reaches_students_servers_only(broker_hub):
    broker_hub.start_server("alice")
    status = f"{broker_hub.server_url('alice')}api/status"

    def status_as(user):
        token = broker_hub.user_token(user)
        headers = {"Authorization": f"token {token}"}
        return requests.get(status, headers=headers, timeout=30, allow_redirects=False)

    assert status_as("tina").status_code == 200
    assert status_as("bob").status_code == 403
    assert status_as("carol").status_code == 403
    tina = broker_hub.user_token("tina")
    assert broker_hub.api("GET", "/users/alice", token=tina).status_code == 200
    assert broker_hub.api("GET", "/users/carol", token=tina).status_code in (403, 404)
