"""jupyterhub-idle-culler as Code Pilot's hubs run it: the same program, ending with its hub.

``python -m codepilot_spawner.services.culler [jupyterhub-idle-culler options]``;
``hub_service`` declares it to a hub.
"""

import logging
import signal
import sys

from .declaration import HubService
from .servicelife import end_with_hub

SERVICE_NAME = "idle-culler"


def hub_service(timeout: int, every: int, python: str = sys.executable) -> HubService:
    """The culler stopping servers idle for ``timeout`` seconds, looking every ``every``."""
    entry = {
        "name": SERVICE_NAME,
        "command": [
            *(python, "-m", "codepilot_spawner.services.culler"),
            f"--timeout={timeout}",
            f"--cull-every={every}",
        ],
    }
    role = {
        "name": SERVICE_NAME,
        "description": "Stop servers nobody used for culler.timeout seconds",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": [SERVICE_NAME],
    }
    return HubService(entry, (role,))


def main() -> None:
    from jupyterhub_idle_culler import main as idle_culler_main  # what runs, when it runs

    # The hub ends its services with SIGINT: answer it even when started with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    end_with_hub(logging.getLogger("codepilot.culler"), "Idle culler")
    idle_culler_main()


if __name__ == "__main__":
    main()
