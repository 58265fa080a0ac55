"""Per-user S3 credentials: the session policy of a user's prefix, and minting them with STS.

The hub's own keys never reach a user pod. In ``sts`` mode the hub calls STS AssumeRole
(with whatever credentials boto3's default chain finds: static keys, a web identity token
for IAM roles for service accounts, EKS Pod Identity's container credentials, an instance
role) with a session policy that narrows the role to one user's prefix, so the short-lived
keys it gets back can read, write, delete and list that prefix and nothing else (plus
reading the starters). In ``static`` mode every user server gets the hub's own
keys, for S3 services without STS: then users can reach each other's files.
"""

import asyncio
import json
import logging
import os
import re
from datetime import UTC, datetime

from codepilot_contracts import layout
from codepilot_contracts.broker import credentials_body
from codepilot_contracts.env import CREDENTIALS_EXPIRATION

from .s3settings import IAM_SPECIAL, STATIC, STATIC_MODE_WARNING, S3Settings

# What a user server may do with the objects under its user's prefix.
OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
# STS RoleSessionName: 2 to 64 of [\w+=,.@-].
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")


# What boto3's default credential chain reads from the environment, besides static keys:
# IRSA's web identity token (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity
# and ECS container credentials (AWS_CONTAINER_*), profiles and the STS endpoint.
CREDENTIAL_CHAIN_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CA_BUNDLE",
)


def credential_chain_environment(environ=os.environ) -> dict[str, str]:
    """The hub's variables that boto3's credential chain reads; only those that are set.

    A hub-managed service does not inherit the hub's environment, so the broker gets
    these explicitly. Empty ones are left out: an empty key would hide the next source.
    """
    return {name: environ[name] for name in CREDENTIAL_CHAIN_VARIABLES if environ.get(name)}


class CredentialsError(RuntimeError):
    """Credentials could not be minted; the message says what to fix."""


def policy_user_prefix(prefix: str, username: str) -> str:
    """The layout's ``<prefix>/users/<user>/``, for a name an IAM policy may carry.

    Names IAM would read as wildcards or variables (``*``, ``?``, ``$``) are refused:
    such a policy could reach other users' prefixes.
    """
    try:
        own = layout.user_prefix(prefix, username)
    except layout.LayoutError:
        own = None
    if own is None or IAM_SPECIAL.search(username):
        raise ValueError(f"user name {username!r} cannot be used in an S3 policy")
    return own


def session_policy(bucket: str, prefix: str, username: str) -> dict:
    """The STS session policy: the user's own prefix, read-only starters.

    The effective permissions are the intersection of this and the role's policy, so
    the role may be broad (the whole bucket) while each session reaches one user.
    """
    own = policy_user_prefix(prefix, username)
    starters = layout.starters_root(prefix)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnWorkspaces",
                "Effect": "Allow",
                "Action": OBJECT_ACTIONS,
                "Resource": f"{bucket_arn}/{own}*",
            },
            {
                "Sid": "ListOwnWorkspaces",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{own}*", f"{starters}*"]}},
            },
            {
                "Sid": "ReadStarters",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{starters}*",
            },
        ],
    }


def session_name(username: str) -> str:
    """An STS RoleSessionName naming the user, so CloudTrail shows whose keys acted."""
    name = "codepilot-" + _SESSION_NAME_BAD.sub("_", username)
    return name[:64]


def credential_metadata(sts_credentials: dict) -> dict:
    """STS's ``Credentials`` in botocore's refreshable-credential metadata form."""
    expiration = sts_credentials["Expiration"]
    if isinstance(expiration, datetime):
        expiration = expiration.astimezone(UTC).isoformat()
    return credentials_body(
        sts_credentials["AccessKeyId"],
        sts_credentials["SecretAccessKey"],
        sts_credentials["SessionToken"],
        expiration,
    )


class CredentialMinter:
    """Mints a user's S3 credentials; boto3 runs in a worker thread, off the event loop."""

    def __init__(self, settings: S3Settings, environ=os.environ, log=None):
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self._environ = environ
        self._sts = None
        if settings.mode == STATIC:
            self.log.warning(STATIC_MODE_WARNING)

    def _hub_keys(self) -> tuple[str, str]:
        key_id = self._environ.get("AWS_ACCESS_KEY_ID", "")
        secret = self._environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not key_id or not secret:
            raise CredentialsError(
                "the hub has no S3 keys: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(the chart passes them from s3.existingSecret)"
            )
        return key_id, secret

    def _sts_client(self):
        if self._sts is None:
            import boto3  # hub-side only; heavy to import

            # Keys given to the minter are used as they are; without them, boto3's default
            # chain finds the hub's identity: a web identity token (IAM roles for service
            # accounts), container credentials (EKS Pod Identity), a profile, an instance role.
            key_id = self._environ.get("AWS_ACCESS_KEY_ID", "")
            secret = self._environ.get("AWS_SECRET_ACCESS_KEY", "")
            keys = {}
            if key_id and secret:
                keys = {
                    "aws_access_key_id": key_id,
                    "aws_secret_access_key": secret,
                    "aws_session_token": self._environ.get("AWS_SESSION_TOKEN") or None,
                }
            self._sts = boto3.session.Session().client(
                "sts",
                endpoint_url=self.settings.endpoint_url or None,
                region_name=self.settings.region,
                **keys,
            )
        return self._sts

    def _assume_role(self, username: str) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            policy = session_policy(self.settings.bucket, self.settings.prefix, username)
        except ValueError as error:
            raise CredentialsError(str(error)) from None
        try:
            response = self._sts_client().assume_role(
                RoleArn=self.settings.role_arn,
                RoleSessionName=session_name(username),
                Policy=json.dumps(policy, separators=(",", ":")),
                DurationSeconds=self.settings.duration_seconds,
            )
        except NoCredentialsError:
            raise CredentialsError(
                "the hub has no AWS credentials to call STS with: give it keys "
                "(s3.existingSecret), or a role through IAM roles for service accounts "
                "(AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE) or EKS Pod Identity"
            ) from None
        except (BotoCoreError, ClientError) as error:
            raise CredentialsError(
                f"STS AssumeRole of {self.settings.role_arn} for {username!r} failed: {error}"
            ) from error
        return credential_metadata(response["Credentials"])

    async def mint(self, username: str) -> dict:
        """Credentials for ``username``'s servers, as botocore credential metadata.

        In static mode they are the hub's own keys, with no token and no expiry.
        """
        if self.settings.mode == STATIC:
            self.log.warning("Giving %s the hub's own S3 keys (static mode)", username)
            key_id, secret = self._hub_keys()
            return credentials_body(key_id, secret, None, None)
        return await asyncio.to_thread(self._assume_role, username)


def credentials_environment(metadata: dict) -> dict[str, str]:
    """The variables of the standard AWS credential chain, plus when they expire."""
    env = {
        "AWS_ACCESS_KEY_ID": metadata["access_key"],
        "AWS_SECRET_ACCESS_KEY": metadata["secret_key"],
    }
    if metadata.get("token"):
        env["AWS_SESSION_TOKEN"] = metadata["token"]
    if metadata.get("expiry_time"):
        env[CREDENTIALS_EXPIRATION] = metadata["expiry_time"]
    return env
