"""The run API: where a user server answers its project's run, and the states it reports.

``GET <server>/codepilot/api/run`` answers a JSON object whose ``state`` is one of
``RUN_STATES`` and whose ``label`` is what the IDE's status bar says (``Running``,
``Crashed (exit 1)``); the class page shows the same label. ``POST`` runs (with
``{"restart": true}``, stops a live run first), ``DELETE`` stops; each answers the same
object.
"""

RUN_PATH = "codepilot/api/run"
RUNNING, STARTING, STOPPED, CRASHED = "running", "starting", "stopped", "crashed"
RUN_STATES = (RUNNING, STARTING, STOPPED, CRASHED)
