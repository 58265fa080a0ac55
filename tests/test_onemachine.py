"""The one-machine IDE end to end: the real hub, proxy, spawner and user servers."""

import json
import os
import pwd
import re
import socket
import subprocess
from pathlib import Path

import pytest
import requests
import websockets.sync.client
from websockets.exceptions import InvalidStatus

from codepilot_spawner.onemachine.processes import tagged_pids
from codepilot_spawner.services.preview.hosts import PreviewDomain

from .support.hubtools import (
    cookie_header,
    login,
    progress_messages,
    save_text,
    server_state,
    wait_until,
)
from .support.students import Student
from .support.terminals import run_in_terminal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def alice(hub):
    return Student(hub, "alice")


@pytest.fixture(scope="module")
def bob(hub):
    return Student(hub, "bob")


def preview_env(hub, student):
    with hub.open_terminal(student.name, student.token) as ws:
        output = run_in_terminal(
            ws,
            'echo "ENV $PORT $CODEPILOT_PREVIEW_PORT $CODEPILOT_PREVIEW_URL $PWD $((40+2))"',
            " 42",
        )
    line = next(line for line in output.splitlines() if line.startswith("ENV ") and "42" in line)
    return line.split()[1:5]


def test_launcher_prints_how_to_log_in(hub):
    log = hub.log()
    assert f"Code Pilot is starting at {hub.url}" in log
    assert "Students: any user name, password class-password" in log
    if os.geteuid() == 0:  # root may change it: the banner names the machine's threshold
        assert "  Disk writeback: once " in log


def test_terminal_runs_in_the_workspace_with_preview_settings(hub, alice):
    port, preview_port, preview_url, cwd = preview_env(hub, alice)
    state = server_state(hub, "alice")
    assert port == preview_port == str(state["app_port"])
    assert preview_url == PreviewDomain("preview.localhost", "http", hub.preview_port).url("alice")
    assert cwd == str(hub.data_dir / "workspaces" / "alice" / "default")


def test_the_prompt_names_the_user_and_the_path_in_the_workspace(hub, alice):
    with hub.open_terminal(alice.name, alice.token) as ws:
        output = run_in_terminal(ws, "mkdir -p src && cd src", "src")
        output += run_in_terminal(ws, "echo $((40+2))", "42")
    shown = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07", "", output)  # colours, titles
    assert "alice:.$ " in shown and "alice:./src$ " in shown, shown
    assert "/workspaces/" not in shown  # no host path, ever


def test_each_server_gets_a_preview_port_of_its_own(hub, alice, bob):
    alice_state, bob_state = server_state(hub, "alice"), server_state(hub, "bob")
    if alice_state.get("netns"):  # as root: the same port, in networks of their own
        assert alice_state["app_port"] == bob_state["app_port"] == 3000
        assert alice_state["netns"] != bob_state["netns"]
    else:
        assert alice_state["app_port"] != bob_state["app_port"]


# --- who may reach what -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["api/contents", "api/terminals", "preview/", "lab", "terminals/websocket/1"]
)
def test_another_users_token_gets_nothing(hub, alice, bob, path):
    response = requests.get(f"{alice.url}{path}", headers=bob.headers, allow_redirects=False)
    assert response.status_code in (403, 404), (path, response.status_code)


def test_another_users_token_cannot_open_a_terminal_websocket(hub, alice, bob):
    created = requests.post(f"{alice.url}api/terminals", headers=alice.headers)
    name = created.json()["name"]
    assert requests.post(f"{alice.url}api/terminals", headers=bob.headers).status_code == 403
    ws_url = "ws" + alice.url[len("http") :]
    with pytest.raises(InvalidStatus) as refused:
        websockets.sync.client.connect(
            f"{ws_url}terminals/websocket/{name}", additional_headers=bob.headers
        )
    assert refused.value.response.status_code in (403, 404)


@pytest.mark.parametrize("path", ["lab", "preview/", "api/contents"])
def test_unauthenticated_requests_go_to_login(hub, alice, path):
    response = requests.get(f"{alice.url}{path}", allow_redirects=False)
    if path.startswith("api/"):
        assert response.status_code == 403
    else:
        assert response.status_code == 302
        assert (
            "/hub/login" in response.headers["Location"]
            or "/hub/api/oauth2" in (response.headers["Location"])
        )


# The preview's websockets are tested on its own origin (test_preview.py).
@pytest.mark.parametrize("endpoint", ["terminals/websocket/{terminal}"])
def test_websocket_with_a_foreign_origin_is_refused(hub, alice, endpoint):
    # Browsers send cookies cross-site, so cookie-authenticated upgrades are the ones
    # that Origin checks protect (a foreign page cannot know a token).
    browser = login(hub, "alice")
    assert browser.get(f"{alice.url}lab").status_code == 200  # OAuth sets the server cookie
    xsrf = browser.cookies.get("_xsrf", path="/user/alice/") or browser.cookies["_xsrf"]
    created = browser.post(f"{alice.url}api/terminals", headers={"X-XSRFToken": xsrf})
    path = endpoint.format(terminal=created.json()["name"])
    ws_url = "ws" + alice.url[len("http") :] + path
    headers = {"Cookie": cookie_header(browser)}
    with pytest.raises(InvalidStatus) as refused:
        websockets.sync.client.connect(
            ws_url, additional_headers=headers, origin="https://evil.example"
        )
    assert refused.value.response.status_code == 403
    if path.startswith("terminals/"):
        # The same cookies from the server's own origin get through.
        with websockets.sync.client.connect(
            ws_url, additional_headers=headers, origin=hub.user_host("alice")
        ) as ws:
            assert json.loads(ws.recv(timeout=10))[0] == "setup"


# --- isolation between Unix users -------------------------------------------------------


@pytest.mark.root
def test_a_student_cannot_plant_a_symlink_beside_a_workspace(hub, alice):
    output = alice.run("ln -s /etc ../planted; echo link-exit=$?")
    assert "link-exit=1" in output and "Permission denied" in output, output
    assert not (hub.data_dir / "workspaces" / "alice" / "planted").is_symlink()


@pytest.mark.root
def test_a_symlink_in_a_workspace_path_is_refused_never_followed(hub, alice, tmp_path):
    """An install from before the user's folder belonged to the hub may hold one."""
    target = tmp_path / "hub-only"
    target.mkdir(mode=0o700)
    planted = hub.data_dir / "workspaces" / "alice" / "old"
    planted.symlink_to(target)
    try:
        response = hub.api("POST", "/users/alice/servers/old")
        if response.status_code in (201, 202):
            wait_until(
                lambda: (
                    "old" not in hub.api("GET", "/users/alice").json()["servers"]
                    or not hub.api("GET", "/users/alice").json()["servers"]["old"]["pending"]
                ),
                60,
                0.2,
                "the start to end",
            )
        server = hub.api("GET", "/users/alice").json()["servers"].get("old")
        assert not (server and server["ready"]), "a server started through the symlink"
        assert target.stat().st_uid == 0 and target.stat().st_mode & 0o777 == 0o700
        assert "'old' is a symlink or not a folder: refusing it" in hub.log()
    finally:
        planted.unlink()
        hub.api("DELETE", "/users/alice/servers/old", json={"remove": True})


@pytest.mark.root
def test_an_isolated_servers_path_holds_nothing_of_the_hubs_user(hub, alice):
    output = alice.run('echo "PATH-IS:$PATH:END"')
    path = re.search(r"PATH-IS:(/\S*):END", output)[1].split(":")
    assert not [folder for folder in path if folder.startswith(("/root", os.path.expanduser("~")))]
    assert path[1:] == [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]


@pytest.mark.root
def test_servers_run_as_different_unix_users(hub, alice, bob):
    def uid_of(student):
        with hub.open_terminal(student.name, student.token) as ws:
            output = run_in_terminal(ws, "echo UID=$(id -u)=$((2*3))", "=6")
        return int(re.search(r"UID=(\d+)=6", output).group(1))

    uid_a, uid_b = uid_of(alice), uid_of(bob)
    assert uid_a != uid_b
    assert uid_a != 0 and uid_b != 0
    assert pwd.getpwuid(uid_a).pw_name == hub.account("alice")


@pytest.fixture
def account_of_another_data_dir(hub, tmp_path):
    """This hub's account name for zoe, taken by a hub of another data dir with the same
    prefix (as two `make up`s with their own CODEPILOT_DATA_DIR would be): its home."""
    home = tmp_path / "other-data-dir" / "homes" / "zoe"
    account = hub.account("zoe")
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", str(home), "--user-group", account],
        check=True,
    )
    yield account, home
    subprocess.run(["userdel", account], capture_output=True)


@pytest.mark.root
def test_an_account_of_another_data_dir_is_refused_and_kept(hub, account_of_another_data_dir):
    account, home = account_of_another_data_dir
    hub.create_user("zoe")
    hub.api("POST", "/users/zoe/server")
    failure = progress_messages(hub, "zoe")[-1]
    assert failure.startswith("Spawn failed: The Unix account"), failure
    assert account in failure and str(home) in failure
    assert "CODEPILOT_ACCOUNT_PREFIX" in failure
    assert not (hub.data_dir / "workspaces" / "zoe").exists()

    assert hub.api("DELETE", "/users/zoe").status_code == 204
    assert pwd.getpwnam(account).pw_dir == str(home)  # the other hub's student keeps it
    assert f"Left the Unix account {account} of zoe" in hub.log()


@pytest.mark.root
def test_a_user_cannot_read_another_users_workspace(hub, alice, bob):
    secret = hub.data_dir / "workspaces" / "alice" / "default" / "secret.txt"
    put = save_text(alice.url, "secret.txt", "alice only", alice.headers)
    assert put.status_code in (200, 201)
    assert secret.read_text() == "alice only"
    with hub.open_terminal(bob.name, bob.token) as ws:
        output = run_in_terminal(
            ws, f"cat {secret} || ls {secret.parent} ; echo status-$((3+4))", "status-7"
        )
    assert "alice only" not in output
    assert "Permission denied" in output
    assert (secret.parent.stat().st_mode & 0o777) == 0o700


# --- lifecycle -------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_stop_ends_every_process_and_restart_keeps_files(hub):
    student = Student(hub, "carol")
    state = server_state(hub, "carol")
    port, tag = state["app_port"], state["process_tag"]
    with hub.open_terminal(student.name, student.token) as ws:
        run_in_terminal(
            ws,
            "echo kept > notes.txt; "
            # A dev server in the background that ignores SIGTERM and SIGHUP, in a
            # session of its own: only the tag finds it.
            "setsid nohup sh -c 'trap \"\" TERM HUP; exec python -m http.server $PORT' "
            ">/dev/null 2>&1 & echo started-$((5*5))",
            "started-25",
        )
    # The server, its shell and the dev server.
    wait_until(lambda: len(tagged_pids(tag)) >= 3, 30, 0.2, "the background dev server")

    hub.stop_server("carol")
    assert tagged_pids(tag) == []
    if not state.get("netns"):  # as root, the port was in the server's own network
        assert port_is_free(port)

    student = Student(hub, "carol")
    response = requests.get(f"{student.url}api/contents/notes.txt", headers=student.headers)
    assert response.json()["content"].strip() == "kept"


def test_named_servers_have_their_own_workspaces(hub, alice):
    hub.start_server("alice", "project1")
    url = hub.server_url("alice", "project1")
    put = save_text(url, "only-here.txt", "named", alice.headers)
    assert put.status_code == 201
    named = hub.data_dir / "workspaces" / "alice" / "project1" / "only-here.txt"
    assert named.read_text() == "named"
    assert not (hub.data_dir / "workspaces" / "alice" / "default" / "only-here.txt").exists()
    hub.stop_server("alice", "project1")


def test_renaming_a_named_server_keeps_its_workspace(hub, alice):
    hub.start_server("alice", "draft")
    url = hub.server_url("alice", "draft")
    save_text(url, "plan.md", "the plan", alice.headers).raise_for_status()
    hub.stop_server("alice", "draft")
    response = hub.api("PATCH", "/users/alice/servers/draft", json={"name": "final"})
    assert response.status_code == 200, response.text
    hub.start_server("alice", "final")
    moved = requests.get(
        f"{hub.server_url('alice', 'final')}api/contents/plan.md", headers=alice.headers
    )
    assert moved.json()["content"] == "the plan"
    assert not (hub.data_dir / "workspaces" / "alice" / "draft").exists()
    hub.stop_server("alice", "final")


def test_a_project_cannot_be_renamed_to_a_servers_route(hub, alice):
    """Renamed ``lab``, a project could never start again (its URL is the default
    server's lab): the hub's rename refuses it and nothing moves."""
    hub.start_server("alice", "sketch")
    url = hub.server_url("alice", "sketch")
    save_text(url, "idea.md", "an idea", alice.headers).raise_for_status()
    hub.stop_server("alice", "sketch")
    response = hub.api("PATCH", "/users/alice/servers/sketch", json={"name": "lab"})
    assert response.status_code == 400, response.text
    assert "cannot be named 'lab'" in response.json()["message"]
    servers = hub.api("GET", "/users/alice?include_stopped_servers=1").json()["servers"]
    assert "sketch" in servers and "lab" not in servers
    assert (hub.data_dir / "workspaces" / "alice" / "sketch" / "idea.md").exists()


def test_named_server_limit_is_enforced(hub):
    hub.create_user("dave")
    limit = int(os.environ.get("CODEPILOT_NAMED_SERVER_LIMIT", 5))
    created = []
    try:
        for i in range(limit):
            response = hub.api("POST", f"/users/dave/servers/p{i}")
            assert response.status_code in (201, 202), response.text
            created.append(f"p{i}")
        response = hub.api("POST", f"/users/dave/servers/p{limit}")
        assert response.status_code == 400
        assert "maximum of" in response.json()["message"]
    finally:
        for name in created:
            hub.wait_ready("dave", name)
            hub.stop_server("dave", name)


def test_deleting_a_project_removes_its_workspace(hub):
    hub.create_user("erin")
    hub.start_server("erin", "scratch")
    token = hub.user_token("erin")
    url = hub.server_url("erin", "scratch")
    save_text(url, "notes.md", "temp", {"Authorization": f"token {token}"}).raise_for_status()
    workspace = hub.data_dir / "workspaces" / "erin" / "scratch"
    assert (workspace / "notes.md").exists()
    hub.stop_server("erin", "scratch")
    response = hub.api("DELETE", "/users/erin/servers/scratch", json={"remove": True})
    assert response.status_code in (202, 204), response.text
    wait_until(lambda: not workspace.exists(), 30, 0.2, "the project's folder to go")


def test_deleting_a_user_removes_their_workspaces_home_and_account(hub):
    hub.create_user("fay")
    for server in ("", "site"):
        hub.start_server("fay", server)
        hub.stop_server("fay", server)
    user_dir = hub.data_dir / "workspaces" / "fay"
    assert (user_dir / "default").is_dir() and (user_dir / "site").is_dir()
    # The student left a link to a folder of the hub's: removal must not follow it.
    kept = hub.data_dir / "templates"
    (user_dir / "default" / "link").symlink_to(kept)
    response = hub.api("DELETE", "/users/fay")
    assert response.status_code == 204, response.text
    assert not user_dir.exists()
    assert not (hub.data_dir / "homes" / "fay").exists()
    assert kept.is_dir()
    if os.geteuid() == 0:
        with pytest.raises(KeyError):
            pwd.getpwnam(hub.account("fay"))


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "api/contents/..%2f..%2f..%2fetc%2fpasswd",
        "api/contents/%2e%2e/%2e%2e/bob/default",
        "api/contents/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
        "api/contents//etc/passwd",
    ],
)
def test_path_traversal_in_contents_api_is_refused(hub, alice, path):
    response = requests.get(f"{alice.url}{path}", headers=alice.headers, allow_redirects=False)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert "root:" not in response.text


def test_writing_outside_the_workspace_is_refused_and_leaves_nothing(hub, alice):
    escape = hub.data_dir / "workspaces" / "alice" / "escaped.txt"
    response = save_text(alice.url, "..%2fescaped.txt", "x", alice.headers)
    assert 400 <= response.status_code < 500
    assert not escape.exists()


def test_unknown_users_get_404(hub):
    assert hub.api("GET", "/users/nobody-here").status_code == 404
    assert hub.api("POST", "/users/nobody-here/server").status_code == 404
    url = f"{hub.server_url('nobody-here')}api/status"
    response = requests.get(url, allow_redirects=False)
    # The hub answers for servers that do not exist: to log in, or to say there is none.
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response.headers["Location"].startswith(("/hub/", f"{hub.url}/hub/"))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", "{not json"),
        ("POST", "/users", json.dumps({"names": ["eve"]})),
        ("PATCH", "/users/alice", json.dumps({"admin": "yes please"})),
        ("POST", "/users/alice/tokens", json.dumps({"expires_in": "soon"})),
    ],
)
def test_malformed_api_bodies_get_400_and_change_nothing(hub, alice, method, path, body):
    before = hub.api("GET", "/users").json()
    response = hub.api(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert "message" in response.json()
    assert hub.api("GET", "/users").json() == before


def test_malformed_contents_body_gets_400(hub, alice):
    response = requests.put(
        f"{alice.url}api/contents/bad.txt",
        headers=alice.headers,
        data="{not json",
    )
    assert response.status_code == 400
    assert not (Path(hub.data_dir) / "workspaces" / "alice" / "default" / "bad.txt").exists()


def test_admin_token_service_has_the_automation_scopes(hub):
    me = hub.api("GET", "/user").json()
    assert me["kind"] == "service"
    assert set(me["scopes"]) >= {
        "admin:users",
        "admin:servers",
        "access:servers",
        "tokens",
        "read:users",
        "list:users",
        "read:metrics",
    }


# --- starters -------------------------------------------------------------------------------


def test_spawn_form_offers_the_starters(hub):
    hub.create_user("erin")
    browser = login(hub, "erin")
    page = browser.get(f"{hub.url}/hub/spawn/erin/project")
    assert page.status_code == 200
    for name in ("python", "flask", "node-express", "react-vite"):
        assert f'<option value="{name}"' in page.text


def test_an_unknown_starter_is_refused_with_the_choices(hub):
    hub.create_user("erin")
    # "template": the option's old name, read the same way.
    for option in ("starter", "template"):
        response = hub.api("POST", "/users/erin/servers/bad", json={option: "../../etc"})
        assert response.status_code == 400
        message = response.json()["message"]
        assert "choose one of: python, flask, node-express, react-vite" in message
        assert "bad" not in hub.api("GET", "/users/erin").json()["servers"]


def test_the_spawn_form_starts_a_server_from_the_chosen_starter(hub):
    hub.create_user("hana")
    browser = login(hub, "hana")
    xsrf = browser.cookies["_xsrf"]
    submitted = browser.post(
        f"{hub.url}/hub/spawn/hana/starter",
        data={"starter": "python", "_xsrf": xsrf},
        allow_redirects=False,
    )
    assert submitted.status_code == 302, submitted.text[:500]
    hub.wait_ready("hana", "starter")
    assert (hub.data_dir / "workspaces" / "hana" / "starter" / "main.py").exists()
    hub.stop_server("hana", "starter")
    # Starting it again asks for no starter: its files are there; it just starts.
    again = browser.get(f"{hub.url}/hub/spawn/hana/starter", allow_redirects=False)
    assert again.status_code == 302 and "codepilot-starter" not in again.text
    hub.wait_ready("hana", "starter")
    hub.stop_server("hana", "starter")


@pytest.mark.parametrize("name", ["api", "lab", "preview", "terminals"])
def test_server_names_that_shadow_server_routes_are_refused(hub, name):
    hub.create_user("hana")
    response = hub.api("POST", f"/users/hana/servers/{name}")
    assert response.status_code == 400
    assert "it is a path of your default server" in response.json()["message"]
