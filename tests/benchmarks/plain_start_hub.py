# Hub config for the class-start benchmark (CODEPILOT_HUB_EXTRA_CONFIG): Code Pilot's
# one-machine hub with plain starts, a new Python process per server, as when the fork
# server is down.
c = get_config()  # noqa: F821
c.CodePilotLocalSpawner.fork_server = False
