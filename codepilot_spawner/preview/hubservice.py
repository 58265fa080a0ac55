"""How a hub runs the preview gateway: its service entry and its roles.

Used by both hub configs, so one machine and Kubernetes wire the gateway the same way;
servers get their preview URLs from the spawner core (``CodePilotSpawnerMixin``).
"""

import sys

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


def hub_service(api_port: int, gateway_args: list[str]) -> tuple[dict, list[dict]]:
    """The managed service entry and the roles the gateway needs."""
    service = {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{api_port}",
        "command": [sys.executable, "-m", "codepilot_spawner.preview", *gateway_args],
        "oauth_no_confirm": True,
        # A viewer's token says which servers they may open; no more.
        "oauth_client_allowed_scopes": ["access:servers"],
    }
    roles = [
        {
            "name": SERVICE_NAME,
            "description": "The preview gateway reads running servers",
            "scopes": GATEWAY_SCOPES,
            "services": [SERVICE_NAME],
        },
        {"name": "user", "description": "Standard user privileges", "scopes": USER_SCOPES},
    ]
    return service, roles
