"""The owner's projects (JupyterHub named servers), seen from one of their servers.

JupyterLab runs on the owner's host (``<user>.<hub host>``), another origin than the
hub's, so the browser cannot call the hub's API with its cookies. These handlers call it
with this server's own token (``JUPYTERHUB_API_TOKEN``), which holds the owner's rights
on their own servers and nothing more (``codepilot_spawner.spawners.projectlimits``):

- ``GET codepilot/api/project``: this project, its owner and who is viewing it;
- ``GET codepilot/api/projects``: the owner's projects and their state;
- ``GET codepilot/api/projects/check?name=<name>``: why a new project cannot take that
  name (``codepilot_contracts.servernames.project_name_problem``), or null;
- ``POST codepilot/api/projects`` ``{"name": ...}``: create and start one;
- ``POST codepilot/api/projects/start`` or ``.../stop`` ``{"name": ...}``: start or stop one;
- ``POST codepilot/api/projects/delete`` ``{"name": ...}``: delete one (the hub stops it
  and the spawner removes its workspace).

Anyone the hub lets open this server (a teacher, an admin) may see the list and open a
project; only the owner may create, stop or delete, since the token acts as the owner.
This project's own server is never stopped or deleted from inside it.
"""

import contextlib
import json
import os
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from codepilot_contracts.defaults import DEFAULT_SERVER
from codepilot_contracts.servernames import project_name_problem

from .upstream import hub_model

PROJECT_PATH = "codepilot/api/project"
PROJECTS_PATH = "codepilot/api/projects"


def project_state(server: dict) -> str:
    """``running``, ``starting``, ``stopping`` or ``stopped``, from a hub server model."""
    pending = server.get("pending")
    if pending == "spawn":
        return "starting"
    if pending == "stop":
        return "stopping"
    if server.get("ready"):
        return "running"
    return "stopped"


def project_rows(owner: str, current: str, servers: dict) -> list[dict]:
    """The owner's projects, the default one first, as the switcher lists them."""
    names = sorted(set(servers) | {""}, key=lambda name: (name != "", name))
    rows = []
    for name in names:
        server = servers.get(name) or {}
        url = server.get("url") or f"/user/{quote(owner, safe='')}/"
        if name and not server.get("url"):
            url += f"{quote(name, safe='')}/"
        rows.append(
            {
                "name": name,
                "label": name or DEFAULT_SERVER,
                "state": project_state(server),
                "url": url,
                "current": name == current,
                "last_activity": server.get("last_activity"),
            }
        )
    return rows


class ProjectsBase(APIHandler):
    """What the handlers share: the owner, the viewer, calls to the hub's API."""

    auth_resource = "servers"

    def initialize(self, limit: int, storage: str):
        self.limit = limit
        self.storage = storage
        self.owner = os.environ.get("JUPYTERHUB_USER", "")
        self.current = os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    @property
    def viewer(self) -> dict:
        """The hub's model of who is signed in to this page (the owner, a teacher...)."""
        return hub_model(self.current_user)

    @property
    def viewer_is_owner(self) -> bool:
        return bool(self.owner) and self.viewer.get("name") == self.owner

    def require_owner(self) -> None:
        if not self.viewer_is_owner:
            raise web.HTTPError(
                403,
                f"Only {self.owner} can create, stop or delete {self.owner}'s projects; "
                "you can see and open them.",
            )

    async def hub(self, method: str, path: str, body: dict | None = None) -> dict | None:
        """Call the hub's API as this server; its JSON answer, or None when it has none."""
        api_url = os.environ.get("JUPYTERHUB_API_URL", "")
        if not api_url or not self.owner:
            raise web.HTTPError(404, "this server does not run under JupyterHub")
        request = HTTPRequest(
            api_url.rstrip("/") + path,
            method=method,
            body=None if body is None else json.dumps(body),
            headers={
                "Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}",
                "Content-Type": "application/json",
            },
            allow_nonstandard_methods=True,  # DELETE with a body
            request_timeout=30,
        )
        try:
            reply = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            message = f"the hub answered {error.code}"
            if error.response is not None and error.response.body:
                with contextlib.suppress(ValueError, AttributeError):
                    message = json.loads(error.response.body).get("message") or message
            raise web.HTTPError(error.code if error.code < 500 else 502, message) from None
        except OSError as error:
            raise web.HTTPError(502, f"the hub is unreachable: {error}") from None
        return json.loads(reply.body) if reply.body else None

    def user_path(self, name: str | None = None) -> str:
        path = f"/users/{quote(self.owner, safe='')}"
        return path if name is None else f"{path}/servers/{quote(name, safe='')}"

    async def servers(self) -> dict:
        model = await self.hub("GET", self.user_path() + "?include_stopped_servers=1") or {}
        return model.get("servers") or {}


class ProjectHandler(ProjectsBase):
    """``GET codepilot/api/project``: whose project this is, and who is looking."""

    @web.authenticated
    @authorized
    def get(self):
        self.finish(
            {
                "owner": self.owner,
                "name": self.current,
                "label": self.current or DEFAULT_SERVER,
                "viewer": self.viewer.get("name") or "",
                "viewer_is_owner": self.viewer_is_owner,
                "may_manage": self.viewer_is_owner,
                "storage": self.storage,
                "limit": self.limit,
            }
        )


def requested_name(body: bytes) -> str:
    """``name`` of a JSON body ``{"name": ...}``; a 400 that says so otherwise."""
    try:
        name = json.loads(body or b"{}")["name"]
    except (ValueError, KeyError, TypeError):
        name = None
    if not isinstance(name, str):
        raise web.HTTPError(400, 'the body must be JSON: {"name": "<project name>"}')
    return name


class ProjectListHandler(ProjectsBase):
    """``GET`` the owner's projects; ``POST {"name": ...}`` creates and starts one."""

    @web.authenticated
    @authorized
    async def get(self):
        rows = project_rows(self.owner, self.current, await self.servers())
        self.finish({"projects": rows, "may_manage": self.viewer_is_owner, "limit": self.limit})

    @web.authenticated
    @authorized
    async def post(self):
        self.require_owner()
        name = requested_name(self.request.body)
        problem = project_name_problem(name, set(await self.servers()), self.limit)
        if problem:
            raise web.HTTPError(400, problem)
        await self.hub("POST", self.user_path(name), {})
        self.log.info("Code Pilot: %s created the project %s", self.owner, name)
        self.set_status(201)
        self.finish({"name": name})


class ProjectNameCheckHandler(ProjectsBase):
    """``GET codepilot/api/projects/check?name=<name>``: ``{"name", "problem"}``."""

    @web.authenticated
    @authorized
    async def get(self):
        name = self.get_argument("name", "")
        problem = project_name_problem(name, set(await self.servers()), self.limit)
        self.finish({"name": name, "problem": problem})


class ProjectActionHandler(ProjectsBase):
    """``POST .../start``, ``.../stop`` or ``.../delete`` with ``{"name": ...}``."""

    @web.authenticated
    @authorized
    async def post(self, action: str):
        self.require_owner()
        name = requested_name(self.request.body)
        if action == "delete" and not name:
            raise web.HTTPError(400, "The default project cannot be deleted, only stopped.")
        if name == self.current and action != "start":
            raise web.HTTPError(
                409,
                f"{self.current or DEFAULT_SERVER} is the project open in this tab: "
                "open another one to stop or delete it.",
            )
        known = name in await self.servers() or (action == "start" and not name)
        if not known:  # the default project exists before its first start
            raise web.HTTPError(404, f"{self.owner} has no project named {name!r}")
        if action == "start":
            await self.hub("POST", self.user_path(name), {})
        elif action == "delete":
            await self.hub("DELETE", self.user_path(name), {"remove": True})
        else:
            await self.hub("DELETE", self.user_path(name))
        self.log.info("Code Pilot: %s: %s the project %r", self.owner, action, name)
        self.finish({"name": name, "done": action})


def project_handlers(limit: int, storage: str) -> list[tuple]:
    """Routes for the extension app (it prefixes base_url)."""
    options = {"limit": limit, "storage": storage}
    return [
        (PROJECT_PATH, ProjectHandler, options),
        (PROJECTS_PATH, ProjectListHandler, options),
        (PROJECTS_PATH + "/check", ProjectNameCheckHandler, options),
        (PROJECTS_PATH + "/(start|stop|delete)", ProjectActionHandler, options),
    ]
