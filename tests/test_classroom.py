"""A class on one machine: teachers and students, the class page, idle culling and the
class's own starters, against the real hub, proxy, servers, preview gateway and an S3 API
(moto's server mode).

Two teachers (ana, ben), three students (sam, sue, sid), the admin. Servers keep their
workspaces in S3 in sync mode; CODEPILOT_CULL_IDLE is 20 seconds.
"""

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp
import pytest
import requests
from aiohttp import web

from codepilot_contracts.run import RUN_STATES
from codepilot_spawner.classroom.groups import (
    STUDENTS_GROUP,
    TEACHERS_GROUP,
    class_group_for,
    parse_names,
    teacher_role,
)
from codepilot_spawner.onemachine.settings import OneMachineSettings, SettingsError, idle_culling
from codepilot_spawner.services.classpage.app import ClassPageApp
from codepilot_spawner.services.classpage.hubclient import ANSWER_LIMIT, HubClient
from codepilot_spawner.services.classpage.roster import (
    LABEL_LIMIT,
    TEXT_LIMIT,
    UNKNOWN,
    class_rows,
    server_state,
)
from codepilot_spawner.services.classpage.samesite import from_the_page
from codepilot_spawner.services.preview.hosts import PreviewDomain
from codepilot_spawner.spawners.starterform import chosen_starter, offered_starters
from server_extension.run.handlers import RunHandler, run_handlers

from .support.hubtools import login, start_hub, wait_until
from .support.loopback import start_on_loopback
from .support.s3server import s3_server_fixture
from .support.students import Student
from .support.terminals import run_in_terminal

ADMIN_PASSWORD = "admin-password-" + "x" * 24
TEACHER_PASSWORD = "teacher-password"
TEACHERS = ["ana", "ben"]
STUDENTS = ["sam", "sue", "sid"]
BUCKET = "classroom"
CULL_IDLE = 20
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"}


# --- pure parts ------------------------------------------------------------------------------


def test_teacher_names_are_checked():
    assert parse_names(" Ana, ben,,ana ") == ["ana", "ben"]
    with pytest.raises(SettingsError, match="CODEPILOT_TEACHERS"):
        OneMachineSettings.from_env({"CODEPILOT_TEACHERS": "ana, b/c"})
    with pytest.raises(SettingsError, match="CODEPILOT_CULL_IDLE"):
        OneMachineSettings.from_env({"CODEPILOT_CULL_IDLE": "-5"})
    assert idle_culling(0) is None
    culler, report_every = idle_culling(3600)
    command = culler.entry["command"]
    assert "--timeout=3600" in command and "--cull-every=600" in command
    (role,) = culler.roles
    assert "delete:servers" in role["scopes"] and report_every == 300


def test_who_joins_which_group():
    assert class_group_for("ana", {"ana"}, {"admin"}, set()) == TEACHERS_GROUP
    assert class_group_for("sam", {"ana"}, {"admin"}, set()) == STUDENTS_GROUP
    assert class_group_for("admin", {"ana"}, {"admin"}, set()) is None
    # someone the admin moved to the teachers stays there
    assert class_group_for("tom", {"ana"}, {"admin"}, {TEACHERS_GROUP}) is None


def test_teacher_role_reaches_the_students_group_only():
    role = teacher_role("cs101", "cs101-teachers", ["bob"])
    scoped = [scope for scope in role["scopes"] if scope != "admin-ui"]
    assert all(scope.endswith(("!group=cs101", "!user=bob")) for scope in scoped)
    assert "servers!group=cs101" in scoped and "access:servers!group=cs101" in scoped
    assert not any(scope.startswith(("admin:", "groups", "tokens")) for scope in scoped)


def test_starters_offered_and_chosen(tmp_path):
    # "templates": the stored name of the class's starters folder in the data dir.
    (tmp_path / "templates" / "week-3").mkdir(parents=True)
    (tmp_path / "templates" / ".hidden").mkdir()
    (tmp_path / "templates" / "python").mkdir()  # named like a packaged one: listed once
    (tmp_path / "templates" / "notes.txt").write_text("not a folder")
    offered = offered_starters(["python", "flask"], tmp_path)
    assert offered == ["python", "flask", "week-3"]
    assert chosen_starter({}, offered, "week-3") == "week-3"  # a bare REST start
    assert chosen_starter({"starter": [""]}, offered, "week-3") == ""  # the form said empty
    assert chosen_starter({"starter": "flask"}, offered, "week-3") == "flask"
    with pytest.raises(Exception, match="Unknown starter"):
        chosen_starter({"starter": "../etc"}, offered)
    # The option's old name, still read; the new one wins when both are sent.
    assert chosen_starter({"template": "flask"}, offered, "week-3") == "flask"
    assert chosen_starter({"template": "flask", "starter": "python"}, offered) == "python"
    with pytest.raises(Exception, match="Unknown starter"):
        chosen_starter({"template": "../etc"}, offered)


def test_a_stopped_named_project_keeps_its_row():
    # The hub's model of a stopped server (include_stopped_servers=1): not active.
    stopped = {"ready": False, "pending": None, "stopped": True, "last_activity": None}
    user = {"name": "chen", "servers": {"": {"ready": True}, "web": stopped}}
    rows = class_rows([user], {}, {}, lambda user, server: "")
    assert [(row["id"], row["state"]) for row in rows] == [
        ("chen/", "running"),
        ("chen/web", "stopped"),
    ]
    assert server_state({**stopped, "pending": "spawn"}) == "starting"


def test_rows_for_200_students_are_built_fast_enough_to_say():
    """Builds the class page's rows for 200 students (half running) and prints the time."""
    users = [
        {
            "name": f"student{i:03d}",
            "last_activity": "2024-01-01T00:00:00Z",
            "servers": {"": {"ready": True, "last_activity": "2024-01-01T00:00:00Z"}}
            if i % 2
            else {},
        }
        for i in range(200)
    ]
    sync = {(u["name"], ""): {"storage": "sync", "state": "idle", "pending": 0} for u in users}
    shares = {(u["name"], ""): "owner" for u in users}
    domain = PreviewDomain("preview.localhost", "http", 8002)
    began = time.perf_counter()
    rows = class_rows(users, sync, shares, domain.url)
    seconds = time.perf_counter() - began
    assert len(rows) == 200 and sum(row["state"] == "running" for row in rows) == 100
    print(json.dumps({"class_rows_200_students_ms": round(seconds * 1000, 2)}))


def test_the_class_page_opens_ides_where_the_hub_says_they_are():
    servers = {
        "": {"ready": True, "url": "http://sam.localhost:8000/user/sam/"},  # subdomains
        "web": {"ready": True, "url": "/user/sam/web/"},  # on the hub's origin
        "old": {"ready": True},
    }
    rows = class_rows([{"name": "sam", "servers": servers}], {}, {}, lambda user, server: "")
    assert [row["ide_url"] for row in rows] == [
        "http://sam.localhost:8000/user/sam/lab",
        "/user/sam/old/lab",
        "/user/sam/web/lab",
    ]


@pytest.mark.parametrize(
    "status",
    [
        {"pending": "x"},
        {"pending": True, "state": ["synced"], "storage": 5},
        {"pending": -3, "last_error": {"message": {"nested": 1}}},
        {"pending": 10**30, "state": "s" * 100_000},
        ["not", "an", "object"],
        None,
    ],
)
def test_what_a_students_server_says_never_breaks_the_class_page(status):
    users = [{"name": "sam", "servers": {"": {"ready": True, "url": "/user/sam/"}}}]
    said = {("sam", ""): status}  # as its sync state and as its run
    rows = class_rows(users, said, {}, lambda user, server: "", runs=said)
    summary = rows[0]["sync"]
    assert summary is None or (
        isinstance(summary["pending"], int)
        and all(len(summary[key]) <= TEXT_LIMIT for key in ("state", "storage", "error"))
    )
    run = rows[0]["run"]
    assert run["state"] in (*RUN_STATES, UNKNOWN) and len(run["label"]) <= LABEL_LIMIT
    assert isinstance(run["command"], str) and len(run["command"]) <= TEXT_LIMIT
    json.dumps(rows)


def test_the_class_page_shows_the_status_bars_words_for_a_run():
    users = [{"name": "sam", "servers": {"": {"ready": True}, "web": {"ready": True}}}]
    runs = {
        ("sam", ""): {"state": "crashed", "label": "Crashed (exit 1)", "command": "npm start"},
        ("sam", "web"): {"state": "asleep", "label": "Running"},  # no state of the API
    }
    rows = class_rows(users, {}, {}, lambda user, server: "", runs=runs)
    assert [row["run"] for row in rows] == [
        {"state": "crashed", "label": "Crashed (exit 1)", "command": "npm start"},
        {"state": UNKNOWN, "label": "Unknown", "command": ""},
    ]
    # A stopped server is not asked: no run state at all.
    stopped = class_rows([{"name": "sid", "servers": {}}], {}, {}, lambda user, server: "")
    assert stopped[0]["run"] is None


def test_the_run_api_path_is_the_contracts():
    assert ("codepilot/api/run", RunHandler) == run_handlers(None)[0][:2]


@pytest.mark.parametrize(
    ("method", "headers", "allowed"),
    [
        ("POST", {"Origin": "http://codepilot.localhost:8000"}, True),
        (
            "POST",
            {"Origin": "http://CodePilot.localhost:8000", "Sec-Fetch-Site": "same-origin"},
            True,
        ),
        ("POST", {}, True),  # no browser's headers: JupyterHub's XSRF check decides
        ("POST", {"Origin": "http://sam.localhost:8000"}, False),  # a student's IDE
        ("PUT", {"Origin": "null"}, False),
        ("POST", {"Sec-Fetch-Site": "same-site"}, False),
        ("GET", {"Origin": "http://elsewhere.example"}, True),
    ],
)
def test_the_class_page_acts_on_requests_from_its_own_page_only(method, headers, allowed):
    assert from_the_page(method, headers, "codepilot.localhost:8000") is allowed


def test_the_class_reads_every_servers_run_at_once_and_a_silent_one_shows_unknown():
    """Four servers hold their run state until all four have been asked: read one after
    another, none would answer in time. A fifth never answers: it alone shows unknown."""
    answering, silent = ["amy", "bob", "cat", "dan"], "eve"

    async def run():
        asked, everyone_asked, never = set(), asyncio.Event(), asyncio.Event()

        async def users(request):
            items = [
                {"name": name, "groups": [STUDENTS_GROUP], "servers": {"": {"ready": True}}}
                for name in [*answering, silent]
            ]
            return web.json_response({"items": items, "_pagination": {}})

        async def token(request):
            return web.json_response({"token": "t"})

        async def server_api(request):
            user = request.match_info["user"]
            if request.match_info["api"] == "sync":
                return web.json_response({"storage": "sync", "state": "idle"})
            if user == silent:
                await never.wait()
            asked.add(user)
            if asked >= set(answering):
                everyone_asked.set()
            await everyone_asked.wait()
            return web.json_response({"state": "running", "label": "Running"})

        app = web.Application()
        app.router.add_get("/hub/api/users", users)
        app.router.add_post("/hub/api/users/{user}/tokens", token)
        app.router.add_get("/user/{user}/codepilot/api/{api}", server_api)
        runner = web.AppRunner(app)
        base = f"http://127.0.0.1:{await start_on_loopback(runner)}"
        try:
            async with aiohttp.ClientSession() as session:
                page = ClassPageApp(proxy_url=base, server_timeout=2.0)
                page.hub = HubClient(session, base + "/hub/api", "t")
                return await page.read_class()
        finally:
            never.set()
            await runner.cleanup()

    rows = {row["user"]: row["run"]["label"] for row in asyncio.run(run())["rows"]}
    assert rows == {**dict.fromkeys(answering, "Running"), silent: "Unknown"}


def test_the_class_page_reads_only_small_json_objects_from_servers():
    async def run():
        answers = {
            "/ok": web.json_response({"pending": 2}),
            "/list": web.json_response([1, 2]),
            "/huge": web.Response(body=b'{"pad": "' + b"x" * (ANSWER_LIMIT + 10) + b'"}'),
            "/deep": web.Response(body=b"[" * 100_000 + b"]" * 100_000),
        }

        async def answer(request):
            return answers[request.path]

        app = web.Application()
        app.router.add_get("/{name}", answer)
        runner = web.AppRunner(app)
        port = await start_on_loopback(runner)
        try:
            async with aiohttp.ClientSession() as session:
                client = HubClient(session, "http://127.0.0.1:1/hub/api", "t")
                return {
                    path: await client.get_json(f"http://127.0.0.1:{port}{path}", "t", 10)
                    for path in answers
                }
        finally:
            await runner.cleanup()

    assert asyncio.run(run()) == {
        "/ok": {"pending": 2},
        "/list": None,
        "/huge": None,
        "/deep": None,
    }


# --- the real hub ------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("localhost_names")
s3 = s3_server_fixture(buckets=(BUCKET,))


@pytest.fixture(scope="module")
def hub(s3):
    running = start_hub(
        env={
            **s3.env,
            "CODEPILOT_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "CODEPILOT_TEACHERS": ",".join(TEACHERS),
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
            "CODEPILOT_CULL_IDLE": str(CULL_IDLE),
            "CODEPILOT_STORAGE": "sync",
            "CODEPILOT_S3_BUCKET": BUCKET,
            "CODEPILOT_S3_PREFIX": "cp",
        }
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sessions(hub):
    """Everyone logged in through the login form, as a browser does."""
    found = {name: login(hub, name, TEACHER_PASSWORD) for name in TEACHERS}
    found.update({name: login(hub, name) for name in STUDENTS})
    found["admin"] = login(hub, "admin", ADMIN_PASSWORD)
    return found


def user_token(hub, name):
    return hub.user_token(name)


@pytest.mark.integration
def test_groups_after_login(hub, sessions):
    def members(group):
        users = hub.api("GET", "/users").json()
        return sorted(user["name"] for user in users if group in user["groups"])

    assert members(TEACHERS_GROUP) == sorted(TEACHERS)
    assert members(STUDENTS_GROUP) == sorted(STUDENTS)


@pytest.mark.integration
def test_the_students_password_does_not_open_a_teacher(hub):
    with pytest.raises(AssertionError, match="login as ana failed"):
        login(hub, "ana")  # the class password


@pytest.mark.integration
def test_a_mistyped_name_is_told_so_and_makes_no_account(hub, sessions):
    def log_in(username, password="class-password", **extra):
        browser = requests.Session()
        browser.get(f"{hub.url}/hub/login", timeout=30).raise_for_status()
        fields = {"username": username, "password": password, **extra}
        return browser.post(
            f"{hub.url}/hub/login",
            data={**fields, "_xsrf": browser.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=60,
        )

    page = requests.get(f"{hub.url}/hub/login", timeout=30).text
    assert 'name="new_account"' in page and "This is my first time here" in page
    # "sam" is a student already; "sma" is not, and the box is not ticked.
    refused = log_in("sma")
    assert refused.status_code == 403
    assert "There is no account named sma yet" in refused.text
    assert hub.api("GET", "/users/sma").status_code == 404
    # Without the class password nobody learns whether a name exists.
    wrong = log_in("sma", password="not-the-password")
    assert wrong.status_code == 403 and "no account named" not in wrong.text
    # A known name needs no box; a new one ticks it and gets her account.
    assert log_in("sam").status_code == 302
    assert log_in("newcomer", new_account="on").status_code == 302
    assert hub.api("GET", "/users/newcomer").status_code == 200
    hub.api("DELETE", "/users/newcomer").raise_for_status()


@pytest.mark.integration
def test_whoever_is_in_the_teachers_group_needs_the_teachers_password(hub, sessions):
    admin = sessions["admin"]

    def as_admin(method, path, body):  # the admin panel's own calls
        headers = {"X-XSRFToken": admin.cookies["_xsrf"]}
        return admin.request(method, f"{hub.url}/hub/api{path}", json=body, headers=headers)

    login(hub, "tess")  # a student, with the class password
    moved = as_admin("POST", f"/groups/{TEACHERS_GROUP}/users", {"users": ["tess"]})
    assert moved.status_code == 200, moved.text
    try:
        with pytest.raises(AssertionError, match="login as tess failed"):
            login(hub, "tess")  # the class password no longer opens a teacher
        login(hub, "tess", TEACHER_PASSWORD)
    finally:
        as_admin("DELETE", f"/groups/{TEACHERS_GROUP}/users", {"users": ["tess"]})
        hub.api("DELETE", "/users/tess")


@pytest.mark.integration
def test_teacher_lists_exactly_her_students(hub, sessions):
    token = user_token(hub, "ana")
    response = hub.api("GET", "/users", token=token)
    assert response.status_code == 200
    assert sorted(user["name"] for user in response.json()) == sorted(STUDENTS)
    student = hub.api("GET", "/users", token=user_token(hub, "sam"))
    assert student.status_code == 403  # students cannot list anyone


@pytest.mark.integration
def test_teacher_cannot_escalate(hub, sessions):
    token = user_token(hub, "ana")
    attempts = [
        ("PATCH", "/users/ana", {"admin": True}),
        ("PATCH", "/users/sam", {"admin": True}),
        ("POST", "/groups/students/users", {"users": ["ana"]}),
        ("POST", "/groups/teachers/users", {"users": ["sam"]}),
        ("DELETE", "/groups/teachers/users", {"users": ["ben"]}),
        ("PUT", "/groups/students/properties", {"x": 1}),
        ("POST", "/users/ben/tokens", {}),
        ("POST", "/users/sam/tokens", {}),
        ("POST", "/users/ben/server", None),
        ("POST", "/users/admin/server", None),
        ("GET", "/users/ben", None),
        ("GET", "/users/admin", None),
        ("POST", "/users", {"usernames": ["intruder"], "admin": True}),
    ]
    for method, path, body in attempts:
        response = hub.api(method, path, token=token, json=body)
        assert response.status_code in (403, 404), (method, path, response.status_code)
        if response.status_code == 404:  # users she may not see answer 404, never 2xx
            assert path.startswith(("/users/ben", "/users/admin")), (method, path)
    # making herself admin and joining a group: 403, as the issue asks
    for method, path, body in attempts[:4]:
        assert hub.api(method, path, token=token, json=body).status_code == 403, path
    assert hub.api("GET", "/users/ana").json()["admin"] is False
    assert hub.api("GET", "/users/ana").json()["groups"] == [TEACHERS_GROUP]


def open_server(session, hub, owner):
    """A browser's visit of ``owner``'s JupyterLab, through the hub's OAuth sign-in."""
    return session.get(f"{hub.server_url(owner)}lab", timeout=60)


@pytest.mark.integration
def test_who_opens_which_ide_and_preview(hub, sessions):
    for name in ("sam", "ben", "admin"):
        hub.create_user(name)
        hub.start_server(name)
    ana, sam = sessions["ana"], sessions["sam"]
    assert open_server(ana, hub, "sam").status_code == 200
    assert open_server(ana, hub, "ben").status_code == 403
    assert open_server(ana, hub, "admin").status_code == 403
    assert open_server(sam, hub, "ana").status_code in (403, 404)
    assert open_server(sam, hub, "ben").status_code == 403
    domain = PreviewDomain("preview.localhost", "http", hub.preview_port)
    # nothing listens in sam's app: the gateway's own page says so, after letting her in
    seen = ana.get(domain.url("sam"), headers=NAVIGATE, timeout=60)
    assert seen.status_code in (200, 502, 503) and seen.url.startswith(domain.url("sam"))
    assert "No access" not in seen.text
    refused = ana.get(domain.url("ben"), headers=NAVIGATE, timeout=60)
    assert refused.status_code == 403
    assert sam.get(domain.url("ben"), headers=NAVIGATE, timeout=60).status_code == 403


@pytest.mark.integration
def test_a_teacher_opens_a_students_preview_settings_but_cannot_share_it(hub, sessions):
    hub.start_server("sam")
    url = f"{hub.server_url('sam')}codepilot/api/preview"

    def call(session, method, body=None):
        page = open_server(session, hub, "sam")  # signed in to sam's server, as a browser
        if "oauth2/authorize" in page.url:  # JupyterHub asks a teacher to authorize once
            fields = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page.text))
            session.post(page.url, data=fields, timeout=60).raise_for_status()
        xsrf = next(c.value for c in session.cookies if c.name == "_xsrf" and "sam" in c.path)
        headers = {"X-XSRFToken": xsrf}
        return session.request(method, url, json=body, headers=headers, timeout=30)

    ana, admin = sessions["ana"], sessions["admin"]
    seen = call(ana, "GET")
    assert seen.json().get("share") == "owner", seen.text
    refused = call(ana, "PUT", {"share": "public"})
    assert refused.status_code == 403, refused.text
    assert "only the owner" in refused.json()["message"]
    assert call(admin, "PUT", {"share": "public"}).status_code == 200
    assert call(admin, "PUT", {"share": "owner"}).json()["share"] == "owner"


def class_page(session, hub, path="") -> requests.Response:
    return session.get(f"{hub.service_url('codepilot')}{path}", timeout=60)


@pytest.mark.integration
def test_class_page_for_teachers_and_admins_only(hub, sessions):
    assert class_page(sessions["sam"], hub).status_code == 403
    assert class_page(sessions["sam"], hub, "api/class").status_code == 403
    for viewer in ("ana", "admin"):
        assert class_page(sessions[viewer], hub).status_code == 200

    def listed():
        snapshot = class_page(sessions["ana"], hub, "api/class").json()
        users = {row["user"] for row in snapshot["rows"]}
        sams = [row for row in snapshot["rows"] if row["user"] == "sam"]
        running = sams and sams[0]["state"] == "running" and sams[0]["sync"]
        return snapshot if users == set(STUDENTS) and running else None

    snapshot = wait_until(listed, 60, 0.5, "the class page lists the students")
    sam = next(row for row in snapshot["rows"] if row["user"] == "sam")
    assert sam["sync"]["storage"] == "sync" and not sam["sync"]["unreachable"]
    assert sam["share"] == "owner"
    assert sam["preview_url"] == PreviewDomain("preview.localhost", "http", hub.preview_port).url(
        "sam"
    )


def xsrf_of(session, hub) -> str:
    page = class_page(session, hub).text
    return re.search(r'name="xsrf" content="([^"]+)"', page).group(1)


@pytest.mark.integration
def test_class_page_stop_answers_and_the_project_stays_listed(hub, sessions):
    hub.start_server("sam", "proj")
    ana = sessions["ana"]
    headers = {"X-XSRFToken": xsrf_of(ana, hub)}
    stopped = ana.post(
        f"{hub.service_url('codepilot')}api/servers/sam/proj/stop", headers=headers, timeout=60
    )
    assert stopped.status_code in (200, 202), stopped.text
    assert stopped.json()["status"] in (202, 204)
    wait_until(lambda: not running(hub, "sam", "proj"), 60, 0.3, "sam's project to stop")

    def listed_stopped():
        rows = class_page(ana, hub, "api/class").json()["rows"]
        return [row for row in rows if row["id"] == "sam/proj" and row["state"] == "stopped"]

    wait_until(listed_stopped, 30, 0.5, "sam's stopped project on the class page")


@pytest.mark.integration
def test_a_teacher_lands_on_the_class_page_with_a_class_link_everywhere(hub, sessions):
    teacher = requests.Session()
    teacher.get(f"{hub.url}/hub/login", timeout=30)
    landed = teacher.post(
        f"{hub.url}/hub/login",
        data={"username": "ben", "password": TEACHER_PASSWORD, "_xsrf": teacher.cookies["_xsrf"]},
        timeout=60,
    )
    page_url = hub.service_url("codepilot")  # on a host of its own
    assert landed.url == page_url
    home = sessions["ana"].get(f"{hub.url}/hub/home", timeout=30).text
    assert f'<a class="nav-link" href="{page_url}">Class</a>' in home
    assert ">codepilot<" not in home and ">codepilot-preview<" not in home
    # The admin panel is the admin's: a teacher does what she may on the class page.
    assert "/hub/admin" not in home and "Admin panel" not in landed.text
    assert sessions["ana"].get(f"{hub.url}/hub/admin", timeout=30).status_code == 403
    assert "Admin panel" in class_page(sessions["admin"], hub).text
    # Students: neither the link nor the internal services, and their own landing.
    student_home = sessions["sam"].get(f"{hub.url}/hub/home", timeout=30).text
    assert ">Class<" not in student_home and "services/codepilot" not in student_home


@pytest.mark.integration
def test_a_teachers_api_token_opens_her_students_servers(hub, sessions):
    token = hub.user_token("ana")  # her role's scopes: access:servers!group=students
    headers = {"Authorization": f"token {token}"}
    status = requests.get(f"{hub.server_url('sam')}api/status", headers=headers, timeout=30)
    assert status.status_code == 200, status.text
    other = requests.get(f"{hub.server_url('ben')}api/status", headers=headers, timeout=30)
    assert other.status_code == 403


@pytest.mark.integration
def test_the_default_starter_offers_the_configured_starters(hub, sessions):
    choices = class_page(sessions["ana"], hub, "api/default-starter").json()["choices"]
    assert {"python", "flask", "node-express", "react-vite"} <= set(choices), choices


@pytest.mark.integration
def test_class_page_stops_only_what_the_viewer_may(hub, sessions):
    ana = sessions["ana"]
    headers = {"X-XSRFToken": xsrf_of(ana, hub)}
    response = ana.post(
        f"{hub.service_url('codepilot')}api/servers/ben//stop", headers=headers, timeout=60
    )
    assert response.status_code in (403, 404)
    assert "" in hub.api("GET", "/users/ben").json()["servers"]
    # without the page's xsrf token a cross-site form cannot act
    forged = ana.post(f"{hub.service_url('codepilot')}api/servers/sam//stop", timeout=60)
    assert forged.status_code == 403
    assert hub.api("GET", "/users/sam").json()["servers"][""]["ready"]


@pytest.mark.integration
def test_a_teacher_runs_and_stops_a_students_app_from_the_class_page(hub, sessions):
    """sue's project runs a tiny app (codepilot.toml), sid's server is stopped: the class
    page shows both; ana's Run and Stop reach sue's server; nobody acts beyond their rights
    or from another site, and a stopped server is never woken."""
    sue = Student(hub, "sue")
    sue.use_run_command()
    page = hub.service_url("codepilot")
    xsrf = {viewer: xsrf_of(sessions[viewer], hub) for viewer in ("ana", "admin")}

    def act(viewer, user, action, **headers):
        return sessions[viewer].post(
            f"{page}api/runs/{user}//{action}",
            headers={"X-XSRFToken": xsrf.get(viewer, ""), **headers},
            timeout=60,
        )

    def row(user):
        rows = class_page(sessions["ana"], hub, "api/class").json()["rows"]
        return next(row for row in rows if row["id"] == f"{user}/")

    started = act("ana", "sue", "run")
    assert started.status_code == 200, started.text
    assert started.json()["run"]["state"] in ("starting", "running")
    # Until the page's next read of the class, its row has no run state at all.
    wait_until(
        lambda: (row("sue")["run"] or {}).get("state") == "running", 60, 0.5, "sue's app running"
    )
    assert row("sue")["run"]["label"] == "Running"  # the status bar's word
    assert "http.server" in row("sue")["run"]["command"]
    sid = row("sid")
    assert (sid["state"], sid["run"]) == ("stopped", None)

    # From another site, with the page's own XSRF token: refused, the app runs on.
    for foreign in ({"Origin": "http://sam.localhost"}, {"Sec-Fetch-Site": "cross-site"}):
        assert act("ana", "sue", "stop", **foreign).status_code == 403
    # Not her student (a teacher, the admin), or not a teacher: refused.
    for viewer, user in (("ana", "ben"), ("ana", "admin"), ("sam", "sue")):
        assert act(viewer, user, "stop").status_code == 403, (viewer, user)
    assert sue.run_state["state"] == "running"

    stopped = act("ana", "sue", "stop")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["run"]["state"] == "stopped"
    assert sue.run_state["state"] == "stopped"
    assert row("sue")["run"]["label"] == "Stopped"  # at once, not at the next read
    # The admin acts on any student, but a stopped server is not started to run an app.
    refused = act("admin", "sid", "run")
    assert refused.status_code == 409, refused.text
    assert not running(hub, "sid")


def workspace_keys(s3, user, server):
    return s3.keys(BUCKET, f"cp/users/{user}/{server or 'default'}/")


@pytest.mark.integration
def test_class_starter_folder_seeds_a_new_workspace(hub, sessions, s3):
    folder = hub.data_dir / "templates" / "week-3"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "exercise.py").write_text("print('week 3')\n")
    (folder / "README.md").write_text("# Week 3\n")
    form = sessions["sue"].get(f"{hub.url}/hub/spawn/sue/lab3", timeout=60)
    assert form.status_code == 200 and 'value="week-3"' in form.text
    hub.start_server("sue", "lab3", starter="week-3")
    assert workspace_keys(s3, "sue", "lab3") >= {
        "cp/users/sue/lab3/src/exercise.py",
        "cp/users/sue/lab3/README.md",
    }
    token = user_token(hub, "sue")
    listing = requests.get(
        f"{hub.server_url('sue', 'lab3')}api/contents/src",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    ).json()
    assert [item["name"] for item in listing["content"]] == ["exercise.py"]
    hub.stop_server("sue", "lab3")


@pytest.mark.integration
def test_teacher_sets_the_default_starter(hub, sessions, s3):
    ana = sessions["ana"]
    headers = {"X-XSRFToken": xsrf_of(ana, hub)}
    url = f"{hub.service_url('codepilot')}api/default-starter"
    refused = ana.put(url, headers=headers, json={"starter": "nonexistent"}, timeout=30)
    assert refused.status_code == 400
    assert ana.put(url, headers=headers, json={"starter": "week-3"}, timeout=30).ok
    assert ana.get(url, timeout=30).json()["starter"] == "week-3"
    form = sessions["sid"].get(f"{hub.url}/hub/spawn/sid/lab4", timeout=60)
    assert '<option value="week-3" selected>' in form.text
    hub.start_server("sid", "lab4")  # a bare REST start: the class's default
    assert "cp/users/sid/lab4/README.md" in workspace_keys(s3, "sid", "lab4")
    hub.stop_server("sid", "lab4")
    assert ana.put(url, headers=headers, json={"starter": ""}, timeout=30).ok


# --- idle culling (last: it stops servers) ---------------------------------------------------


def running(hub, user, server=""):
    return server in hub.api("GET", f"/users/{user}").json()["servers"]


@pytest.mark.integration
def test_idle_culling(hub, sessions, s3):
    """sue idles, sid's preview is viewed every 5 s, sam's last change is pending in S3
    when the culler comes: sue and sam are stopped, sid stays, sam's change is in S3."""
    for name in ("sue", "sid", "sam"):
        hub.start_server(name)
    token = user_token(hub, "sam")
    with s3.outage():
        with hub.open_terminal("sam", token) as ws:
            run_in_terminal(ws, "echo culled-but-kept > pending.txt; echo done-$((6*7))", "42")

        def pending():
            status = requests.get(
                f"{hub.server_url('sam')}codepilot/api/sync?no_track_activity=1",
                headers={"Authorization": f"token {token}"},
                timeout=30,
            ).json()
            return status["pending"] >= 1

        wait_until(pending, 30, 0.3, "sam's change pending")
    domain = PreviewDomain("preview.localhost", "http", hub.preview_port)
    sid = sessions["sid"]
    began = time.monotonic()
    while running(hub, "sue") or running(hub, "sam"):
        assert time.monotonic() - began < CULL_IDLE * 6, "idle servers were not culled"
        sid.get(domain.url("sid"), headers=NAVIGATE, timeout=30)  # viewing sid's preview
        time.sleep(5)
    # two more culler rounds with the preview still being viewed
    for _ in range(int(CULL_IDLE * 1.5 / 5)):
        sid.get(domain.url("sid"), headers=NAVIGATE, timeout=30)
        time.sleep(5)
    assert running(hub, "sid"), "a server whose preview is being viewed was culled"
    assert s3.read(BUCKET, "cp/users/sam/default/pending.txt") == b"culled-but-kept\n"
    assert "idle-culler" in Path(hub.log_path).read_text()
