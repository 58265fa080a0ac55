"""Per-user S3 credentials: the session policy reaches one user's prefix and nothing else.

The policy document is checked two ways: by a small IAM evaluator here (actions,
resources with ``*``/``?`` wildcards, the ``s3:prefix`` condition of ListBucket), and by
moto's own IAM enforcement on a real S3 API on loopback. moto (5.2) ignores the
``Policy`` of AssumeRole and the conditions of a statement, so there the document is
attached as the assumed role's own policy and only object access is checked; listing
is covered by the evaluator. Minting itself runs against moto's STS.
"""

import fnmatch
import json
import logging
import os
from datetime import UTC, datetime

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from codepilot_spawner.credential_minter import (
    CredentialMinter,
    CredentialsError,
    credentials_environment,
    policy_user_prefix,
    session_name,
    session_policy,
)
from codepilot_spawner.s3settings import STATIC_MODE_WARNING, S3Settings

from .support.s3server import CREDENTIALS, start_s3_server

BUCKET = "workspaces"
PREFIX = "codepilot"
ROLE_ARN = "arn:aws:iam::123456789012:role/codepilot-users"

# --- a small IAM evaluator -----------------------------------------------------------------


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: * any run of characters (also "/"), ? one character; case-sensitive.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _conditions_hold(conditions: dict, context: dict) -> bool:
    for operator, keys in conditions.items():
        assert operator == "StringLike", f"evaluator does not know {operator}"
        for key, patterns in keys.items():
            if key not in context:
                return False
            if not any(_matches(p, context[key]) for p in _as_list(patterns)):
                return False
    return True


def allowed(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    """Explicit deny wins, then any allow; nothing matched is denied."""
    verdict = False
    for statement in policy["Statement"]:
        if not any(_matches(a.lower(), action.lower()) for a in _as_list(statement["Action"])):
            continue
        if not any(_matches(r, resource) for r in _as_list(statement["Resource"])):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context or {}):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def object_arn(key: str, bucket: str = BUCKET) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def test_evaluator_knows_allow_deny_wildcards_and_conditions():
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/a?/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/ax/secret"},
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": "arn:aws:s3:::b",
                "Condition": {"StringLike": {"s3:prefix": ["ab/*"]}},
            },
        ]
    }
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::b/ab/x/y")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::b/abc/x")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::b/ax/secret")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::b/ab/x")
    assert allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "ab/"})
    assert not allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "ac/"})
    assert not allowed(policy, "s3:ListBucket", "arn:aws:s3:::b", {})


# --- the session policy ------------------------------------------------------------------------

OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:GetObjectVersion",
    "s3:DeleteObjectVersion",
    "s3:PutObjectAcl",
    "s3:GetObjectAcl",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:RestoreObject",
    "s3:PutObjectTagging",
]
BUCKET_ACTIONS = [
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:DeleteBucket",
    "s3:PutBucketPolicy",
    "s3:GetBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutLifecycleConfiguration",
    "s3:ListAllMyBuckets",
]
OTHER_USERS = ["bob", "alice2", "alic", "Alice", "alice.bak", "alice-", "x"]


def keys_of(user: str) -> list[str]:
    return [
        f"{PREFIX}/users/{user}/default/main.py",
        f"{PREFIX}/users/{user}/project-1/src/app.js",
        f"{PREFIX}/users/{user}/default/.s3keep",
    ]


def test_owner_reads_writes_deletes_own_workspaces():
    policy = session_policy(BUCKET, PREFIX, "alice")
    for key in keys_of("alice"):
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert allowed(policy, action, object_arn(key)), (action, key)
        assert allowed(policy, "s3:AbortMultipartUpload", object_arn(key))
    for listed in (f"{PREFIX}/users/alice/", f"{PREFIX}/users/alice/default/"):
        assert allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": listed})


def test_nothing_outside_the_own_prefix():
    policy = session_policy(BUCKET, PREFIX, "alice")
    outside = [
        *(key for user in OTHER_USERS for key in keys_of(user)),
        f"{PREFIX}/users/alice",  # the bare name, without the slash, is another key
        f"{PREFIX}/users/",
        f"{PREFIX}/state.json",
        "users/alice/default/main.py",  # outside the prefix
        f"other/{PREFIX}/users/alice/default/main.py",
    ]
    for key in outside:
        for action in OBJECT_ACTIONS:
            assert not allowed(policy, action, object_arn(key)), (action, key)
    # The same keys in another bucket.
    for key in keys_of("alice"):
        for action in OBJECT_ACTIONS:
            assert not allowed(policy, action, object_arn(key, "other-bucket")), (action, key)
    for action in BUCKET_ACTIONS:
        for prefix in ("", f"{PREFIX}/", f"{PREFIX}/users/", f"{PREFIX}/users/alice"):
            context = {"s3:prefix": prefix}
            assert not allowed(policy, action, f"arn:aws:s3:::{BUCKET}", context), (action, prefix)
        for user in OTHER_USERS:
            context = {"s3:prefix": f"{PREFIX}/users/{user}/"}
            assert not allowed(policy, action, f"arn:aws:s3:::{BUCKET}", context), (action, user)
    assert not allowed(policy, "s3:ListAllMyBuckets", "*")


def test_starters_are_read_only():
    policy = session_policy(BUCKET, PREFIX, "alice")
    key = object_arn(f"{PREFIX}/templates/flask/app.py")
    assert allowed(policy, "s3:GetObject", key)
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl"):
        assert not allowed(policy, action, key), action
    assert allowed(
        policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{PREFIX}/templates/"}
    )


@pytest.mark.parametrize("name", ["a*", "?lice", "${aws:username}", "a/b", "..", "", "a\x00"])
def test_names_that_iam_reads_as_patterns_are_refused(name):
    with pytest.raises(ValueError, match="cannot be used in an S3 policy"):
        policy_user_prefix(PREFIX, name)


def test_session_policy_fits_sts_limit():
    # STS refuses session policies over 2048 characters (packed).
    long_name = "a" * 64
    packed = json.dumps(session_policy(BUCKET, PREFIX, long_name), separators=(",", ":"))
    assert len(packed) < 2048
    assert session_name("student@example.org") == "codepilot-student@example.org"
    assert session_name("x" * 100) == ("codepilot-" + "x" * 100)[:64]
    assert session_name("a b/c") == "codepilot-a_b_c"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "public"}, "must be one of"),
        ({"role_arn": ""}, "needs the ARN"),
        ({"duration_seconds": 60}, "900 to 43200"),
        ({"prefix": "code*"}, "must not contain"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        S3Settings(**{"bucket": BUCKET, "role_arn": ROLE_ARN, **settings})


# --- against moto on loopback ----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto():
    server = start_s3_server(relay=False)
    yield server
    server.stop()


def admin_client(moto, service: str):
    return boto3.client(
        service,
        endpoint_url=moto.moto_url,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def settings_for(moto, **changes) -> S3Settings:
    return S3Settings(
        **{
            "bucket": BUCKET,
            "prefix": PREFIX,
            "endpoint_url": moto.moto_url,
            "role_arn": ROLE_ARN,
            **changes,
        }
    )


@pytest.mark.integration
async def test_mints_short_lived_credentials_with_sts(moto):
    minter = CredentialMinter(settings_for(moto, duration_seconds=900), environ=CREDENTIALS)
    first = await minter.mint("alice")
    second = await minter.mint("alice")
    assert first["access_key"] != second["access_key"]
    assert first["access_key"] != CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert first["token"] and first["secret_key"]
    expiry = datetime.fromisoformat(first["expiry_time"])
    assert 0 < (expiry - datetime.now(UTC)).total_seconds() <= 900
    env = credentials_environment(first)
    assert env["AWS_SESSION_TOKEN"] == first["token"]
    assert env["CODEPILOT_S3_CREDENTIALS_EXPIRATION"] == first["expiry_time"]


@pytest.mark.integration
async def test_minting_problems_are_clear_errors(moto, monkeypatch, tmp_path):
    isolate_credential_chain(monkeypatch, tmp_path)
    minter = CredentialMinter(settings_for(moto), environ={})
    with pytest.raises(CredentialsError, match="the hub has no AWS credentials"):
        await minter.mint("alice")
    minter = CredentialMinter(settings_for(moto), environ=CREDENTIALS)
    with pytest.raises(CredentialsError, match="cannot be used in an S3 policy"):
        await minter.mint("*")


@pytest.mark.integration
async def test_static_mode_hands_out_the_hub_keys_loudly(moto, caplog):
    caplog.set_level(logging.WARNING)
    minter = CredentialMinter(settings_for(moto, mode="static"), environ=CREDENTIALS)
    metadata = await minter.mint("alice")
    assert metadata["access_key"] == CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert metadata["token"] is None and metadata["expiry_time"] is None
    assert STATIC_MODE_WARNING in caplog.text
    assert "ANY USER CAN READ, CHANGE AND DELETE EVERY OTHER USER'S FILES" in STATIC_MODE_WARNING
    assert set(credentials_environment(metadata)) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.mark.integration
def test_moto_enforces_the_policy_document_on_objects(moto):
    s3 = admin_client(moto, "s3")
    s3.create_bucket(Bucket=BUCKET)
    for key in [*keys_of("alice"), *keys_of("bob"), f"{PREFIX}/templates/flask/app.py"]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"original")
    iam = admin_client(moto, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName="alice-only", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="alice-only",
        PolicyName="session-policy-of-alice",
        PolicyDocument=json.dumps(session_policy(BUCKET, PREFIX, "alice")),
    )
    assumed = admin_client(moto, "sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/alice-only", RoleSessionName="alice"
    )["Credentials"]
    alice = boto3.client(
        "s3",
        endpoint_url=moto.moto_url,
        region_name="us-east-1",
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
    )
    # From here on moto checks every request's signature and IAM policies.
    requests.post(f"{moto.moto_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        own = keys_of("alice")[0]
        assert alice.get_object(Bucket=BUCKET, Key=own)["Body"].read() == b"original"
        alice.put_object(Bucket=BUCKET, Key=own, Body=b"changed")
        alice.delete_object(Bucket=BUCKET, Key=keys_of("alice")[1])
        assert alice.get_object(Bucket=BUCKET, Key=f"{PREFIX}/templates/flask/app.py")
        denied = []
        for key in keys_of("bob"):
            for call, args in (
                ("get_object", {}),
                ("put_object", {"Body": b"overwritten"}),
                ("delete_object", {}),
            ):
                try:
                    getattr(alice, call)(Bucket=BUCKET, Key=key, **args)
                except ClientError as error:
                    denied.append(error.response["Error"]["Code"])
        assert denied == ["AccessDenied"] * 9
        with pytest.raises(ClientError, match="AccessDenied"):
            alice.put_object(Bucket=BUCKET, Key=f"{PREFIX}/templates/flask/app.py", Body=b"x")
    finally:
        requests.post(f"{moto.moto_url}/moto-api/reset-auth", data=b"inf", timeout=10)
    # Read past the policy: bob's files are untouched, alice's change landed.
    for key in keys_of("bob"):
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"original"
    assert s3.get_object(Bucket=BUCKET, Key=keys_of("alice")[0])["Body"].read() == b"changed"


# --- the hub's identity from boto3's chain (IAM roles for service accounts) ---------------------


def isolate_credential_chain(monkeypatch, tmp_path):
    """No AWS settings but the test's own: no keys, profiles or instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.integration
async def test_irsa_web_identity_mints_without_static_keys(moto, monkeypatch, tmp_path):
    """As on EKS with IAM roles for service accounts: a role ARN and a token file only.

    boto3's chain exchanges the token at STS (AssumeRoleWithWebIdentity, moto's STS
    here) and the minter then assumes the users' role with the session policy.
    """
    isolate_credential_chain(monkeypatch, tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/codepilot-hub")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.moto_url)
    minter = CredentialMinter(settings_for(moto), environ=os.environ)
    metadata = await minter.mint("alice")
    assert metadata["access_key"].startswith("ASIA") and metadata["token"]
    client = minter._sts_client()
    assert client._request_signer._credentials.method == "assume-role-with-web-identity"

    # The broker, a service the hub starts, gets what the chain needs (and no empty keys).
    from codepilot_spawner.services.broker import hub_service

    broker = hub_service("http://127.0.0.1:8082", settings_for(moto), environ=os.environ)
    environment = broker.entry["environment"]
    assert environment["AWS_ROLE_ARN"] == "arn:aws:iam::123456789012:role/codepilot-hub"
    assert environment["AWS_WEB_IDENTITY_TOKEN_FILE"] == str(token_file)
    assert "AWS_ACCESS_KEY_ID" not in environment
    assert "AWS_SECRET_ACCESS_KEY" not in environment


def test_broker_gets_pod_identity_and_static_keys_too():
    from codepilot_spawner.services.broker import hub_service

    settings = S3Settings(bucket=BUCKET, role_arn=ROLE_ARN)
    pod_identity = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/pods.eks.amazonaws.com/t",
        "AWS_ACCESS_KEY_ID": "",
        "UNRELATED": "x",
    }
    environment = hub_service("http://127.0.0.1:8082", settings, environ=pod_identity).entry[
        "environment"
    ]
    assert environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/v1/credentials")
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in environment
    assert "AWS_ACCESS_KEY_ID" not in environment and "UNRELATED" not in environment
    broker = hub_service("http://127.0.0.1:8082", settings, environ=CREDENTIALS)
    assert broker.entry["environment"]["AWS_ACCESS_KEY_ID"] == CREDENTIALS["AWS_ACCESS_KEY_ID"]
