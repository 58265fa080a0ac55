# Hub config for the first-minutes browser tests (CODEPILOT_HUB_EXTRA_CONFIG): a forked
# server is ready in about a second, before the spawn page could show a step; this hub
# starts servers as plain processes and always shows the spawn page, so that its progress
# messages can be tested. The other browser tests run forked servers.
c = get_config()  # noqa: F821
c.JupyterHub.slow_spawn_timeout = 0
c.CodePilotLocalSpawner.fork_server = False
