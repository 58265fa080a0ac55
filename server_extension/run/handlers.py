"""``<server>/codepilot/api/run``: the project's run over REST.

- ``GET``: ``state`` (``running``, ``starting``, ``stopped``, ``crashed``), ``label``
  (``Crashed (exit 1)``), ``command``, ``pid``, ``exit_code``, ``started``,
  ``listening_port``, the run's ``terminal`` (its name in ``/terminals/websocket/``, while it
  lives) and its ``viewers`` (each one's ``unsent_bytes``, and whether it fell ``behind``),
  the last run's details and output ``tail`` once it ended, ``problem`` (why the
  last Run could not start) and ``next`` (the command Run would start, or what is wrong);
- ``POST`` (``{"restart": true}`` to stop a live run first): Run; a second Run while one
  is alive changes nothing;
- ``DELETE``: Stop.

Each answers the run's state. A run executes code as the server's user, so these need
the rights a terminal needs (jupyter-server's ``terminals`` resource).
"""

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from codepilot_contracts.run import RUN_PATH

from ..upstream import terminal_manager
from .runner import ProjectRun


class RunHandler(APIHandler):
    auth_resource = "terminals"

    def initialize(self, run: ProjectRun):
        self.run = run

    @web.authenticated
    @authorized
    async def get(self):
        self.finish(await self.run.model())

    @web.authenticated
    @authorized
    async def post(self):
        body = self.get_json_body() or {}
        await self.run.start(restart=bool(body.get("restart")))
        self.finish(await self.run.model())

    @web.authenticated
    @authorized
    async def delete(self):
        await self.run.stop()
        self.finish(await self.run.model())


def project_run(serverapp, port: int, parent) -> ProjectRun:
    """The server's one run, on the app's ``port``, configured as ``c.ProjectRun``."""
    return ProjectRun(lambda: terminal_manager(serverapp), serverapp.root_dir, port, parent=parent)


def run_handlers(run: ProjectRun) -> list[tuple]:
    """The routes for the extension app (it prefixes base_url)."""
    return [(RUN_PATH, RunHandler, {"run": run})]
