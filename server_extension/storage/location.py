"""Where a workspace lives in S3 and how to reach it: ``WorkspaceLocation``.

The user server's S3 settings as one value. It is built in two places, from the
extension's ``c.CodePilot`` traits (``CodePilot.workspace_location``) and from the
``sync`` command's options and ``CODEPILOT_*`` variables (``sync/settings.py``), and
handed whole to the contents-manager choice (``wiring``), ``S3Store``, the restore and
the seeding of a new workspace. ``SyncContentsManager`` run without the extension
builds one from its own ``s3_*`` traits.
"""

from dataclasses import dataclass

from codepilot_contracts import defaults, layout


@dataclass(frozen=True)
class WorkspaceLocation:
    """A workspace's place in a bucket, and the S3 API and credentials that reach it."""

    bucket: str
    # The deployment's key prefix: workspaces under ``<prefix>/users/``, starters under
    # ``<prefix>/templates/``.
    prefix: str = defaults.S3_PREFIX
    # This workspace's keys, ``<prefix>/users/<user>/<server or "default">/``; empty
    # when no workspace is meant (uploading starters).
    key_prefix: str = ""
    # Empty: the standard AWS configuration decides (``AWS_ENDPOINT_URL_S3``,
    # ``AWS_REGION``), as it does credentials.
    endpoint_url: str = ""
    region: str = ""
    # The hub's credential broker, which renews short-lived keys; empty: the AWS chain.
    credentials_url: str = ""

    def __post_init__(self):
        if not self.bucket:
            raise ValueError("a workspace location needs an S3 bucket")

    @classmethod
    def of_workspace(
        cls,
        bucket: str,
        prefix: str,
        user: str,
        server: str = "",
        *,
        endpoint_url: str = "",
        region: str = "",
        credentials_url: str = "",
    ) -> "WorkspaceLocation":
        """The workspace of ``user``'s server ``server`` (empty: the default server)."""
        return cls(
            bucket,
            prefix,
            layout.workspace_prefix(prefix, user, server),
            endpoint_url,
            region,
            credentials_url,
        )

    def starter_prefix(self, starter: str) -> str:
        """Where the deployment keeps the starter ``starter``."""
        return layout.starter_prefix(self.prefix, starter)

    @property
    def url(self) -> str:
        """``s3://<bucket>/<key prefix>``: the workspace as status and logs name it."""
        return f"s3://{self.bucket}/{self.key_prefix}"
