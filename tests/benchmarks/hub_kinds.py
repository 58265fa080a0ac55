"""The hubs the start benchmarks compare: Code Pilot as configured, Code Pilot with
plain starts (no fork server) and stock JupyterHub with SimpleLocalProcessSpawner.

Each value is the extra hub config file (``CODEPILOT_HUB_EXTRA_CONFIG``), None for none.
"""

from pathlib import Path

STOCK_HUB_CONFIG = Path(__file__).with_name("stock_hub.py")
PLAIN_HUB_CONFIG = Path(__file__).with_name("plain_start_hub.py")
HUB_CONFIGS = {"codepilot": None, "plain": PLAIN_HUB_CONFIG, "stock": STOCK_HUB_CONFIG}


def hub_environment(kind: str) -> dict[str, str]:
    """The environment ``start_hub`` needs to start the hub of ``kind``."""
    config = HUB_CONFIGS[kind]
    return {"CODEPILOT_HUB_EXTRA_CONFIG": str(config)} if config else {}
