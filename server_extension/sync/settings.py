"""The sync command's settings: its options, else the server's ``CODEPILOT_*`` variables,
else the server's defaults; and the ``WorkspaceLocation`` the command works on.

The command runs beside the server (in the init container, before the one-machine
server starts) with the environment the spawner gives the server, so each option is a
``c.CodePilot`` trait and reads that trait's variable.
"""

import argparse
import os

from codepilot_contracts import defaults
from codepilot_contracts.env import env_name

from ..storage.location import WorkspaceLocation
from ..storage.restore import EMPTY_PREFIX_CHOICES

# Option -> c.CodePilot trait, whose CODEPILOT_* variable gives the default.
OPTIONS = {
    "s3_bucket": "S3 bucket of workspaces and starters",
    "s3_prefix": "key prefix inside the bucket",
    "s3_endpoint_url": "S3 endpoint URL (MinIO, ...); empty for AWS",
    "s3_region": "S3 region",
    "workspace_user": "user name in the workspace key (default: JUPYTERHUB_USER)",
    "workspace_server": "server name in the workspace key (default: JUPYTERHUB_SERVER_NAME)",
    "restore_empty_prefix": "when S3 holds nothing where the workspace was synced: refuse "
    "(default) or push (keep the local files and push them)",
}
FALLBACK_VARIABLES = {
    "workspace_user": "JUPYTERHUB_USER",
    "workspace_server": "JUPYTERHUB_SERVER_NAME",
    # The old name of CODEPILOT_STARTER, still read: hubs before the rename set it.
    "starter": env_name("template"),
}
# The server's defaults for settings that are unset (set but empty stays empty).
SETTING_DEFAULTS = {
    "s3_prefix": defaults.S3_PREFIX,
    "s3_region": defaults.S3_REGION,
    "restore_empty_prefix": EMPTY_PREFIX_CHOICES[0],
}


class SettingsError(ValueError):
    """A setting the command needs is missing; the message says where to set it."""


def resolve(args: argparse.Namespace, name: str, environ=os.environ) -> str:
    """The setting ``name`` (a ``c.CodePilot`` trait) as the command sees it."""
    value = getattr(args, name, None)
    if value is None:
        value = environ.get(env_name(name))
    if value is None and name in FALLBACK_VARIABLES:
        value = environ.get(FALLBACK_VARIABLES[name])
    if value is None:
        value = SETTING_DEFAULTS.get(name)
    return value or ""


def location_from_options(
    args: argparse.Namespace, environ=os.environ, workspace: bool = True
) -> WorkspaceLocation:
    """Where the command works; ``workspace=False``: the bucket alone (starters)."""
    bucket = resolve(args, "s3_bucket", environ)
    if not bucket:
        raise SettingsError(f"no S3 bucket: set {env_name('s3_bucket')} or --s3-bucket")
    prefix = resolve(args, "s3_prefix", environ)
    reach = {
        "endpoint_url": resolve(args, "s3_endpoint_url", environ),
        "region": resolve(args, "s3_region", environ),
        "credentials_url": resolve(args, "credentials_url", environ),
    }
    if not workspace:
        return WorkspaceLocation(bucket, prefix, **reach)
    user = resolve(args, "workspace_user", environ)
    if not user:
        raise SettingsError(
            f"no user: set {env_name('workspace_user')}, JUPYTERHUB_USER or --workspace-user"
        )
    server = resolve(args, "workspace_server", environ)
    return WorkspaceLocation.of_workspace(bucket, prefix, user, server, **reach)
