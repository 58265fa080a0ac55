"""jupyterhub-idle-culler as Code Pilot's hubs run it: the same program, ending with its hub.

``python -m codepilot_spawner.services.culler [jupyterhub-idle-culler options]``.
"""

import logging
import signal

from jupyterhub_idle_culler import main as idle_culler_main

from .servicelife import end_with_hub


def main() -> None:
    # The hub ends its services with SIGINT: answer it even when started with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    end_with_hub(logging.getLogger("codepilot.culler"), "Idle culler")
    idle_culler_main()


if __name__ == "__main__":
    main()
