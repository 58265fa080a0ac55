"""``python -m codepilot_spawner.services.classpage``: the class page, run by the hub as a service.

Served at ``/services/codepilot/`` behind the hub's proxy, signed in to with JupyterHub
OAuth, for teachers and admins. One background loop reads the class (the hub's user
list, each running server's sync state through the hub's proxy, each preview's share
level from the preview gateway) every ``refresh_interval`` seconds while a page watches;
pages poll the snapshot it keeps, so 200 students cost one pass however many teachers
watch, and nothing once no page has asked for ``watch_window`` seconds.
Start and stop go to the hub with the viewer's own token: the hub decides what they may;
so do Run, Stop and Restart of a student's app, at the student's server's run API.
"""

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import aiohttp
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.escape import xhtml_escape
from traitlets import Bool, Dict, Float, Int, List, Unicode
from traitlets.config import Application

from codepilot_contracts.run import RUN_PATH

from ...classroom.groups import DEFAULT_STARTER_PROPERTY, STUDENTS_GROUP, TEACHERS_GROUP
from ...spawners.starterform import offered_starters
from ..errors import error_body
from ..preview.hosts import PreviewDomain
from ..preview.hubservice import SERVICE_NAME as PREVIEW_SERVICE
from ..servicelife import until_stopped
from .hubclient import HubClient
from .roster import class_rows, run_summary, server_state, server_url
from .samesite import from_the_page

STATIC = Path(__file__).resolve().parent / "static"
# Read without touching the server's activity: watching a class keeps nobody's server up.
SYNC_PATH = "codepilot/api/sync?no_track_activity=1"
RUN_STATE_PATH = RUN_PATH + "?no_track_activity=1"
# What each of the page's app buttons sends to a server's run API.
RUN_ACTIONS = {
    "run": ("POST", None),
    "restart": ("POST", {"restart": True}),
    "stop": ("DELETE", None),
}
EXPOSED = (
    '<div class="notice" id="exposed">Students\' IDEs share the hub\'s origin '
    "(subdomains are off): when you open a student's IDE, code the student put there "
    "runs with your rights on the hub. Open IDEs of students you trust only.</div>"
)


class ClassPageApp(Application):
    """Lists a class's students and their servers for teachers and admins."""

    name = "codepilot-classpage"
    description = __doc__

    student_group = Unicode(STUDENTS_GROUP, help="Hub group whose members are listed.").tag(
        config=True
    )
    teacher_group = Unicode(TEACHERS_GROUP, help="Hub group whose members may open the page.").tag(
        config=True
    )
    proxy_url = Unicode(
        "http://127.0.0.1:8000",
        help="""The hub's proxy as this service reaches it: servers' sync state is read at
        ``<proxy_url>/user/<name>/<server>/codepilot/api/sync``.""",
    ).tag(config=True)
    proxy_ca = Unicode(
        "",
        help="""With an https ``proxy_url``: the certificate the proxy serves (PEM), trusted
        as it is, for servers' hosts; empty: the system's certificate authorities.""",
    ).tag(config=True)
    preview_api_url = Unicode(
        "",
        help="""The preview gateway's service URL (``.../services/codepilot-preview/``),
        where ``api/shares/<user>/<server>`` says a preview's share level. Empty: none.""",
    ).tag(config=True)
    preview_domain = Unicode("preview.localhost", help="Domain of preview origins.").tag(
        config=True
    )
    preview_scheme = Unicode("http", help="Scheme of preview URLs.").tag(config=True)
    preview_port = Int(0, help="Port in preview URLs (0: the scheme's default).").tag(config=True)
    data_dir = Unicode(
        "",
        help="""The hub's data directory, whose ``templates/`` (the stored name of the
        starters folder) holds the class's starters.""",
    ).tag(config=True)
    configured_starters = List(
        Unicode(), help="The configured starters a default may name, besides the folders."
    ).tag(config=True)
    subdomains = Bool(
        True,
        help="""Whether the hub serves each user's servers on a host of their own
        (``JupyterHub.subdomain_host``); when not, the page warns that opening a
        student's IDE runs the student's code with the teacher's rights.""",
    ).tag(config=True)
    refresh_interval = Float(
        3.0, help="Seconds between two reads of the class (the page polls the result)."
    ).tag(config=True)
    watch_window = Float(
        60.0,
        help="""Seconds the class is read for after a page last asked; then the loop rests
        until a page asks again, so a class nobody watches costs the hub nothing.""",
    ).tag(config=True)
    concurrency = Int(16, help="Servers asked for their sync state and share level at once.").tag(
        config=True
    )
    server_timeout = Float(
        3.0,
        help="""Seconds a server or the gateway gets to answer before it shows unreachable
        (its app's run state: unknown).""",
    ).tag(config=True)
    run_action_timeout = Float(
        15.0,
        help="""Seconds a student's server gets to answer a teacher's Run, Stop or Restart
        (Stop waits for the app's processes to end).""",
    ).tag(config=True)

    run_answers = Dict(
        help="""Row id -> (time.monotonic(), run summary) a server answered to a viewer's
        action: it outranks what a read of the class begun before the action saw."""
    )

    snapshot: dict = {"rows": [], "updated": None, "error": "Loading the class..."}
    last_watched = float("-inf")  # time.monotonic() of the last page's poll

    def preview_url(self, user: str, server: str) -> str:
        return PreviewDomain(self.preview_domain, self.preview_scheme, self.preview_port).url(
            user, server
        )

    async def read_class(self) -> dict:
        """One pass over the class: the rows the page shows, and how long it took."""
        began = time.monotonic()
        users = await self.hub.students(self.student_group)
        running = [
            (user["name"], name, server_url(user["name"], name, server))
            for user in users
            for name, server in (user.get("servers") or {}).items()
            if server.get("ready")
        ]
        limit = asyncio.Semaphore(self.concurrency)
        sync, shares, runs = {}, {}, {}

        async def ask(user, server, url):
            async with limit:
                try:
                    token = await self.hub.student_token(user)
                except RuntimeError as error:
                    self.log.warning("%s", error)
                    sync[(user, server)] = {"unreachable": True}
                    return
                sync_url, host = self.through_proxy(url, SYNC_PATH)
                run_url, _ = self.through_proxy(url, RUN_STATE_PATH)
                # Each with its own short timeout, all servers at once: a slow one
                # delays no other.
                status, run, share = await asyncio.gather(
                    self.hub.get_json(sync_url, token, self.server_timeout, host=host),
                    self.hub.get_json(run_url, token, self.server_timeout, host=host),
                    self.share_level(user, server, token),
                )
                sync[(user, server)] = status or {"unreachable": True}
                runs[(user, server)] = run
                if share:
                    shares[(user, server)] = share

        await asyncio.gather(*(ask(*server) for server in running))
        rows = self.with_run_answers(class_rows(users, sync, shares, self.preview_url, runs), began)
        return {
            "rows": rows,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.monotonic() - began, 3),
            "error": "",
        }

    def through_proxy(self, server_url: str, path: str) -> tuple[str, str]:
        """``(url, host)`` of ``path`` of a server: through the proxy on loopback, for the
        server's own host (with subdomains, <user>.<hub host>, which this machine may not
        resolve)."""
        public = urlparse(server_url)
        return self.proxy_url + public.path + path, public.netloc

    def note_run_answer(self, row_id: str, run: dict) -> None:
        """A server's answer to a teacher's action, on the page at its next poll."""
        self.run_answers[row_id] = (time.monotonic(), run)
        for row in self.snapshot["rows"]:
            if row["id"] == row_id and row.get("run") is not None:
                row["run"] = run

    def with_run_answers(self, rows: list[dict], began: float) -> list[dict]:
        """``rows`` with the answers to actions taken while they were read."""
        self.run_answers = {
            row_id: answer for row_id, answer in self.run_answers.items() if answer[0] > began
        }
        for row in rows:
            answer = self.run_answers.get(row["id"])
            if answer and row["run"] is not None:
                row["run"] = answer[1]
        return rows

    async def share_level(self, user: str, server: str, token: str) -> str:
        if not self.preview_api_url:
            return ""
        # By hand: url_path_join drops the empty name of a default server.
        url = (
            self.preview_api_url.rstrip("/")
            + f"/api/shares/{quote(user, safe='')}/{quote(server, safe='')}"
        )
        model = await self.hub.get_json(url, token, self.server_timeout)
        return str(model.get("share", "")) if model else ""

    def is_watched(self) -> bool:
        return time.monotonic() - self.last_watched <= self.watch_window

    async def current_snapshot(self) -> dict:
        """The snapshot for a page's poll; read afresh first when the loop was resting."""
        resting = not self.is_watched()
        self.last_watched = time.monotonic()
        if resting:
            self.read_done.clear()
            self.wake.set()
            # A read is bounded by server_timeout per server; the page keeps polling.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.read_done.wait(), 4 * self.server_timeout)
        return self.snapshot

    async def refresh_forever(self):
        while True:
            if not self.is_watched():
                self.wake.clear()
                await self.wake.wait()
            try:
                self.snapshot = await self.read_class()
            except Exception as error:  # the page says so and keeps the last rows
                self.log.warning("Could not read the class: %s", error)
                self.snapshot = {**self.snapshot, "error": f"Could not read the class: {error}"}
            self.read_done.set()
            await asyncio.sleep(self.refresh_interval)

    def make_web_app(self) -> web.Application:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/codepilot/")
        # On a host of its own with subdomains: the hub says the full callback URL.
        callback = os.environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL") or prefix + "oauth_callback"
        hub_auth = HubOAuth(cache_max_age=60, oauth_redirect_uri=callback)
        settings = {
            "hub_auth": hub_auth,
            "cookie_secret": os.urandom(32),
            "static_path": str(STATIC),
            "static_url_prefix": prefix + "static/",
            "classpage": self,
        }
        return web.Application(
            [
                (prefix, PageHandler),
                (prefix + "api/class", ClassHandler),
                (prefix + r"api/servers/([^/]+)/([^/]*)/(start|stop)", ServerActionHandler),
                (prefix + r"api/runs/([^/]+)/([^/]*)/(run|stop|restart)", RunActionHandler),
                (prefix + "api/default-starter", DefaultStarterHandler),
                (prefix + "oauth_callback", HubOAuthCallbackHandler),
            ],
            **settings,
        )

    def proxy_tls(self) -> ssl.SSLContext | None:
        if not self.proxy_url.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=self.proxy_ca or None)
        # The hub's own certificate is the anchor, also when a CA issued it.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context

    async def serve(self):
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8084"))
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency * 2)
        ) as session:
            self.hub = HubClient(
                session,
                os.environ["JUPYTERHUB_API_URL"],
                os.environ["JUPYTERHUB_API_TOKEN"],
                [f"access:services!service={PREVIEW_SERVICE}"] if self.preview_api_url else [],
                proxy_tls=self.proxy_tls(),
            )
            self.wake, self.read_done = asyncio.Event(), asyncio.Event()
            server = self.make_web_app().listen(url.port, url.hostname or "127.0.0.1")
            refresher = asyncio.ensure_future(self.refresh_forever())
            self.log.info("Class page on %s", url.geturl())
            await until_stopped(self.log, "Class page")
            refresher.cancel()
            server.stop()

    def start(self):
        logging.basicConfig(level=logging.WARNING)  # tornado's errors reach the hub's log
        asyncio.run(self.serve())


class ClassPageHandler(HubOAuthenticated, web.RequestHandler):
    """Teachers and admins only; everyone else signed in gets 403."""

    @property
    def classpage(self) -> ClassPageApp:
        return self.settings["classpage"]

    def set_default_headers(self):
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        )

    def prepare(self):
        if not from_the_page(self.request.method, self.request.headers, self.request.host):
            raise web.HTTPError(403, "the class page acts on requests from its own page only")
        return super().prepare()

    def viewer(self) -> dict:
        model = self.current_user
        if model is None:
            raise web.HTTPError(403)
        if not (model.get("admin") or self.classpage.teacher_group in model.get("groups", [])):
            raise web.HTTPError(403, "the class page is for teachers and admins")
        return model

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(status_code, kwargs.get("exc_info", (None, None))[1]))


ADMIN_LINK = '<a class="hublink" href="{{hub}}admin">Admin panel</a>'


class PageHandler(ClassPageHandler):
    @web.authenticated
    def get(self):
        viewer = self.viewer()
        html = (STATIC / "index.html").read_text()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        # Teachers do everything a teacher may here; the admin panel is the admin's.
        admin_link = ADMIN_LINK if viewer.get("admin") else ""
        self.finish(
            html.replace("{{admin_link}}", admin_link)
            .replace("{{xsrf}}", self.xsrf_token.decode())
            .replace("{{static}}", self.settings["static_url_prefix"])
            .replace("{{hub}}", os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL") or "/hub/")
            .replace("{{user}}", xhtml_escape(viewer["name"]))
            .replace("{{exposed}}", "" if self.classpage.subdomains else EXPOSED)
        )


class ClassHandler(ClassPageHandler):
    @web.authenticated
    async def get(self):
        self.viewer()
        snapshot = await self.classpage.current_snapshot()
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(snapshot))


class ServerActionHandler(ClassPageHandler):
    """``POST api/servers/<user>/<server>/start|stop`` as the viewer (their own token)."""

    @web.authenticated
    async def post(self, user, server, action):
        self.viewer()
        token = self.hub_auth.get_token(self)
        path = f"/users/{quote(user, safe='')}/" + (
            f"servers/{quote(server, safe='')}" if server else "server"
        )
        status, body = await self.classpage.hub.request(
            "POST" if action == "start" else "DELETE", path, token=token
        )
        # The hub's 204 (stopped) has no body; the page's answer always has one.
        passed = status if status in (201, 202, 400, 403, 404) else 502
        self.set_status(200 if status == 204 else passed)
        self.set_header("Content-Type", "application/json")
        message = (body or {}).get("message", "") if isinstance(body, dict) else ""
        self.finish(json.dumps({"status": status, "message": message}))


class RunActionHandler(ClassPageHandler):
    """``POST api/runs/<user>/<server>/run|stop|restart``: a student's app, at the
    student's server's run API, with the viewer's own token. The hub's roles decide
    whose servers that token opens (a teacher's students; every server for an admin), so
    the page never acts beyond the viewer's rights; a stopped server is not woken."""

    @web.authenticated
    async def post(self, user, server, action):
        self.viewer()
        page = self.classpage
        token = self.hub_auth.get_token(self)
        status, model = await page.hub.request("GET", f"/users/{quote(user, safe='')}", token=token)
        if status in (403, 404):  # a user the viewer may not see
            raise web.HTTPError(403, f"{user} is not a student of yours")
        if status != 200:
            raise web.HTTPError(502, f"the hub answered {status}")
        found = (model.get("servers") or {}).get(server)
        if server_state(found) != "running":
            raise web.HTTPError(409, f"{user}'s server is not running: start it first")
        url, host = page.through_proxy(server_url(user, server, found), RUN_PATH)
        method, body = RUN_ACTIONS[action]
        status, answer = await page.hub.call_server(
            method, url, token, page.run_action_timeout, host, body
        )
        if status is None:
            raise web.HTTPError(504, f"{user}'s server did not answer")
        if status == 403:
            raise web.HTTPError(403, f"{user}'s server refused you (sign in again if it is yours)")
        if status != 200 or answer is None:
            raise web.HTTPError(502, f"{user}'s server answered {status}")
        run = run_summary(answer)
        page.note_run_answer(f"{user}/{server}", run)
        page.log.info("%s: %s of %s/%s", self.current_user["name"], action, user, server)
        self.finish({"run": run})


class DefaultStarterHandler(ClassPageHandler):
    """``GET``/``PUT api/default-starter``: the class's default starter (a group property)."""

    @web.authenticated
    async def get(self):
        self.viewer()
        status, group = await self.classpage.hub.request(
            "GET", f"/groups/{quote(self.classpage.student_group, safe='')}"
        )
        if status != 200:
            raise web.HTTPError(502, f"the hub answered {status}")
        properties = group.get("properties") or {}
        self.finish(
            {
                "starter": properties.get(DEFAULT_STARTER_PROPERTY, ""),
                "choices": self.choices(),
            }
        )

    def choices(self) -> list[str]:
        page = self.classpage
        return offered_starters(page.configured_starters, page.data_dir or "/nonexistent")

    @web.authenticated
    async def put(self):
        self.viewer()
        try:
            starter = json.loads(self.request.body or b"{}").get("starter", "")
        except (ValueError, AttributeError):
            raise web.HTTPError(400, 'send {"starter": "<name>"}') from None
        if not isinstance(starter, str) or (starter and starter not in self.choices()):
            raise web.HTTPError(
                400, f"starter must be empty or one of: {', '.join(self.choices())}"
            )
        group_path = f"/groups/{quote(self.classpage.student_group, safe='')}"
        status, group = await self.classpage.hub.request("GET", group_path)
        if status != 200:
            raise web.HTTPError(502, f"the hub answered {status}")
        properties = dict(group.get("properties") or {})
        if starter:
            properties[DEFAULT_STARTER_PROPERTY] = starter
        else:
            properties.pop(DEFAULT_STARTER_PROPERTY, None)
        status, _ = await self.classpage.hub.request(
            "PUT", group_path + "/properties", body=properties
        )
        if status != 200:
            raise web.HTTPError(502, f"the hub answered {status}")
        self.classpage.log.info(
            "%s set the default starter to %r", self.current_user["name"], starter
        )
        self.finish({"starter": starter})


def main():
    ClassPageApp.launch_instance()
