# Hub config for the JupyterLab extension's browser tests (CODEPILOT_HUB_EXTRA_CONFIG). A
# user server keeps the hub's answer about a token for HubAuth.cache_max_age (JupyterHub's
# default: 5 minutes), so a logout reaches a tab that is still open only that late; these
# servers ask the hub again after a second, so a test sees at once what a student sees then.
c = get_config()  # noqa: F821
c.Spawner.args = ["--HubOAuth.cache_max_age=1"]
