"""How a hub runs the preview gateway: its service entry and its roles.

Used by both hub configs, so one machine and Kubernetes wire the gateway the same way;
servers get their preview URLs from the spawner core (``CodePilotSpawnerMixin``).
"""

import sys
from urllib.parse import urlsplit

from jupyterhub.utils import url_path_join

from ..declaration import HubService

SERVICE_NAME = "codepilot-preview"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"
# What the gateway reads at the hub: running servers, their owners' groups (teachers'
# access comes through groups) and the spawner state that says where each app listens.
GATEWAY_SCOPES = [
    "list:users",
    "read:users:name",
    "read:users:groups",
    "read:servers",
    "admin:server_state",
    "users:activity",  # viewing a preview keeps its server from being culled
]
# Everyone may sign in to the gateway; what they may open is decided per preview.
USER_SCOPES = ["self", f"access:services!service={SERVICE_NAME}"]
# Where gateways that run apart from the hub (Kubernetes replicas) keep share levels: the
# properties of this group, which has no members.
SHARES_GROUP = "codepilot-preview-shares"
SHARES_GROUP_SCOPES = [f"groups!group={SHARES_GROUP}"]


def hub_service(
    api_url: str, previews_ip: str, previews_port: int, gateway_args: list[str]
) -> HubService:
    """The gateway as a managed service, with the roles it needs.

    The hub runs the gateway under a supervisor that holds both its listening sockets
    (the previews' on ``previews_ip:previews_port``, the hub origin's at ``api_url``),
    has its code imported, and starts it again at once if it dies."""
    api = urlsplit(api_url)
    command = [
        *(sys.executable, "-m", "codepilot_spawner.services.supervise"),
        *("--listen", f"{previews_ip}:{previews_port}"),
        *("--listen", api.netloc),
        *("--preload", "codepilot_spawner.services.preview.app"),
        *("--", "codepilot_spawner.services.preview"),
        f"--PreviewGatewayApp.ip={previews_ip}",
        f"--PreviewGatewayApp.port={previews_port}",
        *gateway_args,
    ]
    return HubService({**service_entry(api_url), "command": command}, service_roles())


def external_service(api_url: str, api_token: str, public_url: str) -> HubService:
    """The gateway as an external service: a Deployment of its own (Kubernetes), reached at
    ``api_url`` (its Service), signing viewers in at ``public_url`` (its OAuth callback
    is there), with the token its pods are given; it keeps share levels in
    ``SHARES_GROUP``."""
    entry = {
        **service_entry(api_url),
        "api_token": api_token,
        "oauth_redirect_uri": url_path_join(public_url, "oauth_callback"),
    }
    return HubService(entry, service_roles(SHARES_GROUP_SCOPES))


def service_entry(api_url: str) -> dict:
    return {
        "name": SERVICE_NAME,
        "url": api_url,
        "oauth_no_confirm": True,
        "display": False,  # its root is no page: nothing to list under Services
        # A viewer's token says which servers they may open; no more.
        "oauth_client_allowed_scopes": ["access:servers"],
    }


def service_roles(extra_scopes=()) -> tuple[dict, dict]:
    return (
        {
            "name": SERVICE_NAME,
            "description": "The preview gateway reads running servers",
            "scopes": [*GATEWAY_SCOPES, *extra_scopes],
            "services": [SERVICE_NAME],
        },
        {"name": "user", "description": "Standard user privileges", "scopes": USER_SCOPES},
    )
