"""What the hub side relies on in the installed KubeSpawner, JupyterHub, aiohttp and tornado.

``codepilot_spawner/upstream_api/`` names what those projects do not document as API; the
rest checked here is public but used in a precise shape (hook signatures, a setter, a
form parser). Each test exercises the installed package and checks the behaviour the hub
side relies on, one test per use, so an upgrade that breaks it fails here, by name, and
not in a cluster. KubeSpawner runs against the fake Kubernetes API of
tests/support/kubeapi.py; test_kube_spawner_api.py and test_broker.py exercise the
spawners and services themselves.
"""

import asyncio
import inspect
import os
import pwd
import signal
import socket
import subprocess
import sys
import tomllib
from importlib.metadata import version
from types import SimpleNamespace

import aiohttp
import pytest
from jupyterhub.services.auth import HubAuth, HubAuthenticated
from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client import CoreV1Api
from kubespawner import KubeSpawner
from kubespawner import objects as kube_objects
from packaging.requirements import Requirement
from tornado import httputil, web
from traitlets.config import Config

from codepilot_spawner import CodePilotLocalSpawner
from codepilot_spawner.upstream_api import CHECKED_VERSIONS
from codepilot_spawner.upstream_api import jupyterhub as jupyterhub_api
from codepilot_spawner.upstream_api import kubespawner as kubespawner_api
from codepilot_spawner.upstream_api.aiohttp import PreambleConnector

from .support.hubtools import REPO_ROOT
from .support.kube_hub import kubespawner_on_fake_api, make_spawner
from .support.kubeapi import POD_IP

NAMESPACE = "codepilot"

# Calls made through kubespawner_api.core_api(spawner), with the arguments given by name.
CORE_API_CALLS = {
    "create_namespaced_secret": ("namespace", "body"),
    "read_namespaced_secret": ("name", "namespace"),
    "delete_namespaced_secret": ("name", "namespace"),
    "patch_namespaced_secret": ("name", "namespace", "body"),
    "read_namespaced_pod_log": ("name", "namespace"),
}


def hub_requirements() -> dict:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["optional-dependencies"]["hub"]
    return {requirement.name: requirement.specifier for requirement in map(Requirement, declared)}


def test_the_checked_versions_are_named():
    # Not a pin (pyproject allows a range): what the comments and checks were made on,
    # which must lie in the range the hub side declares.
    declared = hub_requirements()
    for package, checked in CHECKED_VERSIONS.items():
        assert checked.count(".") == 2, package
        assert version(package), package
        assert declared[package].contains(checked), (package, checked)


# --- KubeSpawner ---------------------------------------------------------------------


@pytest.fixture(scope="module")
async def started_kubespawner():
    """A plain KubeSpawner started against the fake API, with hooks that record their
    arguments: (spawner, fake API, [(hook, spawner, pod, pod already created)])."""
    async with kubespawner_on_fake_api() as api:
        calls = []

        def modify_pod_hook(spawner, pod):
            created = (NAMESPACE, pod.metadata.name) in api.pods
            calls.append(("modify_pod_hook", spawner, pod, created))
            return pod

        def after_pod_created_hook(spawner, pod):
            created = (NAMESPACE, pod["metadata"]["name"]) in api.pods
            calls.append(("after_pod_created_hook", spawner, pod, created))

        config = Config()
        config.KubeSpawner.update(
            k8s_api_host=api.url,
            namespace=NAMESPACE,
            start_timeout=30,
            k8s_api_request_timeout=5,
            modify_pod_hook=modify_pod_hook,
            after_pod_created_hook=after_pod_created_hook,
        )
        spawner = make_spawner(config, spawner_class=KubeSpawner)
        await spawner.start()
        yield spawner, api, calls
        await spawner.stop()


async def test_kubespawners_api_client_takes_our_calls_to_its_api(started_kubespawner):
    spawner, api, _ = started_kubespawner
    client = kubespawner_api.core_api(spawner)
    assert isinstance(client, CoreV1Api)
    for method, parameters in CORE_API_CALLS.items():
        signature = inspect.signature(getattr(CoreV1Api, method))
        assert set(parameters) <= set(signature.parameters), (method, signature)
    # The client reaches the API KubeSpawner was configured with.
    body = {"metadata": {"name": "probe"}, "data": {}}
    await client.create_namespaced_secret(namespace=NAMESPACE, body=body)
    await client.read_namespaced_secret(name="probe", namespace=NAMESPACE)
    await client.delete_namespaced_secret(name="probe", namespace=NAMESPACE)
    log = await client.read_namespaced_pod_log(name=spawner.pod_name, namespace=NAMESPACE)
    assert log == ""
    assert [r for r in api.requests if r[1] == "secrets"] == [
        ("create", "secrets", "probe"),
        ("get", "secrets", "probe"),
        ("delete", "secrets", "probe"),
    ]


async def test_the_pod_reflector_holds_pods_by_namespace_and_name(started_kubespawner):
    spawner, api, _ = started_kubespawner
    pod = kubespawner_api.reflected_pod(spawner)
    assert isinstance(pod, dict)
    assert pod["metadata"]["name"] == spawner.pod_name
    assert pod["metadata"]["uid"] == api.pods[(NAMESPACE, spawner.pod_name)]["metadata"]["uid"]
    assert pod["status"]["podIP"] == POD_IP


async def test_pod_hooks_get_the_spawner_and_the_pod(started_kubespawner):
    spawner, _, calls = started_kubespawner
    (modify, after) = calls
    # modify_pod_hook: the pod object, before it is created; after_pod_created_hook: the
    # pod as the API returned it (a dict, with its uid).
    assert modify[:2] == ("modify_pod_hook", spawner) and modify[3] is False
    assert modify[2].metadata.name == spawner.pod_name
    assert after[:2] == ("after_pod_created_hook", spawner) and after[3] is True
    assert after[2]["metadata"]["uid"]
    for trait in ("modify_pod_hook", "after_pod_created_hook"):
        assert trait in KubeSpawner.class_trait_names(config=True)
    for trait in ("k8s_api_request_timeout", "k8s_api_request_retry_timeout"):
        assert trait in KubeSpawner.class_trait_names()


async def test_progress_events_carry_the_kubernetes_event(started_kubespawner):
    spawner, api, _ = started_kubespawner
    event = api.add_event(
        NAMESPACE,
        {
            "metadata": {"name": f"{spawner.pod_name}.pulled", "uid": "event-1"},
            "involvedObject": {"kind": "Pod", "name": spawner.pod_name, "namespace": NAMESPACE},
            "type": "Normal",
            "reason": "Pulled",
            "message": "Successfully pulled the image",
            "lastTimestamp": "2026-01-01T00:00:01Z",
            "eventTime": None,
        },
    )
    raw_events = []
    for _ in range(50):  # until the event reflector has it
        raw_events = [kubespawner_api.raw_event(e) async for e in spawner.progress()]
        if any(raw_events):
            break
        await asyncio.sleep(0.1)
    assert [raw["metadata"]["uid"] for raw in raw_events if raw] == ["event-1"]
    assert next(raw for raw in raw_events if raw)["reason"] == event["reason"]


def test_the_server_container_has_the_name_we_look_for():
    pod = kube_objects.make_pod(
        name="jupyter-alice", cmd=["jupyterhub-singleuser"], port=8888, image="runner"
    )
    (container,) = pod.spec.containers
    assert container.name == kubespawner_api.SERVER_CONTAINER


def test_kubespawners_owner_reference():
    owner = kube_objects.make_owner_reference("jupyter-alice", "uid-1")
    assert (owner.kind, owner.name, owner.uid) == ("Pod", "jupyter-alice", "uid-1")
    assert owner.block_owner_deletion is True and owner.controller is False


def test_exponential_backoff_takes_a_timeout():
    assert "timeout" in inspect.signature(exponential_backoff).parameters


# --- JupyterHub ----------------------------------------------------------------------


def test_the_hub_database_keeps_spawner_states_in_the_spawners_table(tmp_path):
    from jupyterhub import orm

    database = tmp_path / "jupyterhub.sqlite"
    session = orm.new_session_factory(f"sqlite:///{database}")()
    try:
        user = orm.User(name="ana")
        session.add(user)
        state = {"pid": 4321, "process_tag": "0123abcd", "preview_port": 3000}
        session.add(orm.Spawner(user=user, name="", state=state))
        session.add(orm.Spawner(user=user, name="never-started"))
        session.commit()
    finally:
        session.close()
    assert jupyterhub_api.stored_spawner_states(database) == [state]


def test_a_local_spawners_state_keeps_its_pid():
    spawner = LocalProcessSpawner()
    jupyterhub_api.adopt_process(spawner, 4321)
    state = spawner.get_state()
    assert jupyterhub_api.state_pid(state) == 4321
    restarted = LocalProcessSpawner()  # a restarted hub's
    restarted.load_state(state)
    assert jupyterhub_api.adopted_pid(restarted) == 4321


def unused_pid() -> int:
    """A pid no process has now (the highest free one: the last to be handed out)."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise RuntimeError("no free pid")


async def test_an_adopted_process_is_polled_by_its_pid():
    spawner = LocalProcessSpawner()
    jupyterhub_api.adopt_process(spawner, os.getpid())
    assert jupyterhub_api.adopted_pid(spawner) == os.getpid()
    assert await spawner.poll() is None  # running
    jupyterhub_api.adopt_process(spawner, unused_pid())
    assert await spawner.poll() == 0  # gone, and forgotten
    assert jupyterhub_api.state_pid(spawner.get_state()) is None


async def test_a_forgotten_process_is_gone_without_a_signal(monkeypatch):
    spawner = LocalProcessSpawner()
    jupyterhub_api.adopt_process(spawner, os.getpid())
    signalled = []
    monkeypatch.setattr(os, "kill", lambda *args: signalled.append(args))
    jupyterhub_api.forget_process(spawner)
    assert await spawner.poll() == 0
    assert signalled == []
    assert spawner.get_state() == {}


# A process that SIGINT ends, whatever the test runner's own SIGINT disposition.
SLEEPER = (
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "print('ready', flush=True); time.sleep(60)"
)


@pytest.mark.integration
async def test_an_adopted_process_is_stopped_by_its_pid():
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SLEEPER, stdout=subprocess.PIPE, start_new_session=True
    )
    assert await process.stdout.readline() == b"ready\n"
    spawner = LocalProcessSpawner(interrupt_timeout=10)
    jupyterhub_api.adopt_process(spawner, process.pid)
    assert await spawner.poll() is None
    try:
        await spawner.stop()
        assert await process.wait() == -signal.SIGINT  # SIGINT first
        assert jupyterhub_api.state_pid(spawner.get_state()) is None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def account_with_a_home() -> pwd.struct_passwd | None:
    for name in ("daemon", "bin", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        if account.pw_dir not in ("", "/") and os.path.isdir(account.pw_dir):
            return account
    return None


@pytest.mark.integration
@pytest.mark.root
def test_switch_user_becomes_the_user_and_stays_in_the_working_directory():
    account = account_with_a_home()
    if account is None:
        pytest.skip("no system account with a home folder to switch to")
    result = subprocess.run(
        ["sh", "-c", "id -u; id -g; pwd -P"],
        preexec_fn=jupyterhub_api.switch_user(account.pw_name),
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [str(account.pw_uid), str(account.pw_gid), "/"]


@pytest.fixture(scope="module")
async def initialized_hub(tmp_path_factory):
    """A JupyterHub initialized in this process (no proxy, no server started), over a
    database in memory."""
    from jupyterhub.app import JupyterHub

    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("hub"))  # whatever the hub writes, it writes there
    hub = JupyterHub(
        named_server_limit_per_user=4,
        db_url="sqlite://",
        cookie_secret=os.urandom(32),
        log_level="ERROR",
    )
    try:
        await hub.initialize([])
    finally:
        os.chdir(here)
    yield hub
    hub.db.close()


def hub_user_row(hub, name: str):
    from jupyterhub import orm

    row = orm.User(name=name)
    hub.db.add(row)
    hub.db.commit()
    return row


def login_handler(hub):
    """The hub's request handler for a login form's POST, as an authenticator's hooks
    get it."""
    from jupyterhub.handlers.base import BaseHandler

    request = httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("POST", "/hub/login", "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "127.0.0.1"}),
        connection=SimpleNamespace(set_close_callback=lambda callback: None),
    )
    return BaseHandler(hub.tornado_application, request)


async def test_a_spawners_user_carries_the_hubs_named_server_limit(initialized_hub):
    from jupyterhub import orm

    hub = initialized_hub
    hub_user_row(hub, "ana")
    spawner = hub.users[orm.User.find(hub.db, "ana").id].spawner
    assert jupyterhub_api.named_server_limit(spawner.user) == 4


async def test_a_login_handler_finds_a_user_only_once_the_hub_has_them(initialized_hub):
    from jupyterhub.user import User

    handler = login_handler(initialized_hub)
    assert jupyterhub_api.find_hub_user(handler, "ben") is None
    hub_user_row(initialized_hub, "ben")
    found = jupyterhub_api.find_hub_user(handler, "ben")
    assert isinstance(found, User) and found.name == "ben"


async def test_a_login_handler_creates_a_new_user_with_the_default_role(initialized_hub):
    from jupyterhub import orm

    hub = initialized_hub
    handler = login_handler(hub)
    user = jupyterhub_api.hub_user(handler, "cleo")
    assert user.name == "cleo" and not hub.db.new  # recorded
    row = orm.User.find(hub.db, "cleo")
    assert row is not None and [role.name for role in row.roles] == ["user"]
    assert jupyterhub_api.hub_user(handler, "cleo") is user  # once
    assert jupyterhub_api.find_hub_user(handler, "cleo") is user


async def test_a_user_is_placed_in_one_group_of_several(initialized_hub):
    from jupyterhub import orm

    hub = initialized_hub
    row = hub_user_row(hub, "dora")
    user = hub.users[row]
    classes = ("pupils", "tutors")
    # A database row (an authenticator's add_user at hub start) or a User: the groups
    # the hub lacks are made, and the change is recorded.
    assert jupyterhub_api.place_in_group(row, "pupils", out_of=classes) is True
    hub.db.rollback()  # undoes nothing: it was committed
    assert {group.name for group in row.groups} == {"pupils"}
    assert orm.Group.find(hub.db, "tutors") is not None
    assert jupyterhub_api.place_in_group(user, "choir") is True
    assert jupyterhub_api.place_in_group(user, "tutors", out_of=classes) is True
    assert {group.name for group in row.groups} == {"choir", "tutors"}
    assert [user.name for user in orm.Group.find(hub.db, "pupils").users] == []
    # A row the hub has not recorded is left alone.
    assert jupyterhub_api.place_in_group(orm.User(name="eve"), "pupils", out_of=classes) is False
    assert orm.User.find(hub.db, "eve") is None


async def test_the_names_of_a_users_groups(initialized_hub):
    from jupyterhub import orm

    hub = initialized_hub
    row = hub_user_row(hub, "finn")
    assert jupyterhub_api.group_names(row) == set()
    row.groups = [orm.Group(name="finches"), orm.Group(name="owls")]
    hub.db.commit()
    assert jupyterhub_api.group_names(row) == {"finches", "owls"}
    assert jupyterhub_api.group_names(hub.users[row]) == {"finches", "owls"}


async def test_the_properties_of_a_users_groups(initialized_hub):
    from jupyterhub import orm

    hub = initialized_hub
    row = hub_user_row(hub, "gus")
    row.groups = [orm.Group(name="plain"), orm.Group(name="set", properties={"colour": "red"})]
    hub.db.commit()
    for user in (row, hub.users[row]):
        properties = jupyterhub_api.group_properties(user)
        assert sorted(properties, key=len) == [{}, {"colour": "red"}]


@pytest.mark.parametrize(
    ("configured", "form", "options"),
    [
        (None, {"starter": ["flask"]}, {"starter": "flask"}),  # "simple": one value each
        ("passthrough", {"starter": ["flask"]}, {"starter": ["flask"]}),  # config wins
    ],
)
def test_the_local_spawners_form_parser(configured, form, options):
    config = Config()
    if configured:
        config.CodePilotLocalSpawner.options_from_form = configured
    spawner = CodePilotLocalSpawner(config=config)
    assert spawner.run_options_from_form(form) == options


def test_the_broker_sets_tornados_current_user():
    # CredentialsHandler.prepare sets current_user after an async HubAuth lookup.
    assert inspect.getattr_static(web.RequestHandler, "current_user").fset is not None
    assert "current_user" not in vars(HubAuthenticated)
    assert "sync" in inspect.signature(HubAuth.get_user).parameters
    assert "model" in inspect.signature(HubAuthenticated.check_hub_user).parameters


# --- aiohttp -------------------------------------------------------------------------


@pytest.mark.parametrize("own_sockets", [False, True], ids=["aiohttps-sockets", "socket-factory"])
async def test_a_preamble_connector_begins_each_new_connection_with_its_preamble(own_sockets):
    preamble = b"PREAMBLE 0123\r\n"
    connections: list[bytearray] = []

    async def answer_each_request(reader, writer):
        received = bytearray()
        connections.append(received)
        answered = 0
        while chunk := await reader.read(65536):
            received += chunk
            while received.count(b"\r\n\r\n") > answered:
                answered += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_each_request, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    options = {}
    if own_sockets:

        def factory(addr_info):
            family, kind, proto, _, _ = addr_info
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            return sock

        options["socket_factory"] = factory
    try:
        async with aiohttp.ClientSession(connector=PreambleConnector(preamble, **options)) as s:

            async def get(path):
                async with s.get(f"http://127.0.0.1:{port}{path}") as response:
                    return await response.text()

            assert [await get("/one"), await get("/two")] == ["ok", "ok"]  # kept alive
            assert len(connections) == 1
            assert bytes(connections[0]).startswith(preamble + b"GET /one ")
            assert b"GET /two " in connections[0]
            # Requests at once need new connections: each begins with the preamble.
            assert await asyncio.gather(*(get(f"/{n}") for n in range(3))) == ["ok"] * 3
            assert len(connections) > 1
            for received in connections:
                assert bytes(received).startswith(preamble + b"GET /")
                assert received.count(preamble) == 1
    finally:
        server.close()
        await server.wait_closed()
