"""A class on a school network: the hub at hub.example.test, its users' hosts under it and
previews under a domain of their own, all mapped to this machine in Chromium."""

from ..support.hubtools import free_port, start_hub
from .chromium import CHROMIUM, CHROMIUM_ARGS

NETWORK_HOST = "hub.example.test"
PREVIEW_DOMAIN = "cp-previews.test"
RESOLVER_RULES = (
    f"MAP {NETWORK_HOST} 127.0.0.1, MAP *.example.test 127.0.0.1, MAP *.{PREVIEW_DOMAIN} 127.0.0.1"
)


def start_network_hub(scheme: str = "http", env: dict | None = None, **options):
    """A hub at ``<scheme>://hub.example.test:<port>``, previews on ``*.cp-previews.test``."""
    port = free_port()
    return start_hub(
        env={
            "CODEPILOT_PORT": str(port),
            "CODEPILOT_PUBLIC_URL": f"{scheme}://{NETWORK_HOST}:{port}",
            "CODEPILOT_PREVIEW_DOMAIN": PREVIEW_DOMAIN,
            **(env or {}),
        },
        **options,
    )


def launch_network_chromium(playwright, *args: str):
    """Chromium that finds the network's names on this machine. Over plain HTTP on such
    names it sends no ``Sec-Fetch-*``."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules={RESOLVER_RULES}", *args],
    )
