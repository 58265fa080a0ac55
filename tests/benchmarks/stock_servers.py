# Hub config added by the benchmarks (CODEPILOT_HUB_EXTRA_CONFIG): users whose names start
# with "stock" get a stock jupyter-server, without the Code Pilot extension, from the
# same hub, so both are measured through the same proxy.
from pathlib import Path

STOCK_CONFIG_DIR = str(Path(__file__).parent / "stock_jupyter_config")


def stock_server_for_stock_users(spawner):
    if spawner.user.name.startswith("stock"):
        spawner.environment = {**spawner.environment, "JUPYTER_CONFIG_DIR": STOCK_CONFIG_DIR}


c = get_config()  # noqa: F821
c.Spawner.pre_spawn_hook = stock_server_for_stock_users
