# Hub config for the spawn benchmark's baseline (CODEPILOT_HUB_EXTRA_CONFIG): JupyterHub's
# SimpleLocalProcessSpawner with a stock jupyter-server, behind the same proxy and login.
import os
import sys
from pathlib import Path

STOCK_CONFIG_DIR = str(Path(__file__).parent / "stock_jupyter_config")

c = get_config()  # noqa: F821
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = (
    os.environ["CODEPILOT_DATA_DIR"] + "/stock/{username}"
)
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"JUPYTER_CONFIG_DIR": STOCK_CONFIG_DIR}
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
