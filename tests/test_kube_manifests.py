"""CodePilotSpawner's pods, Secrets and profiles, built with no cluster and validated.

The hub config is loaded from a values file as in the chart, a spawner is made from it
for every starter, size, credentials mode and server kind, and every object it makes is
validated with kubernetes-validate (strict) for Kubernetes 1.30 and 1.37 and checked
for the security rules.
"""

import base64
import copy
import itertools
import json
import logging
import re
import subprocess
import sys
from types import SimpleNamespace

import kubernetes_validate
import pytest
from jupyterhub import orm
from jupyterhub.objects import Hub
from kubespawner.objects import make_owner_reference

from codepilot_contracts import restoreprogress
from codepilot_spawner.credential_minter import credentials_environment
from codepilot_spawner.kubernetes import objects, podstatus
from codepilot_spawner.kubernetes.values import ValuesError

from .support.helm import render
from .support.kube_hub import (
    BASE_VALUES,
    HUB_SECRETS,
    REPO_ROOT,
    load_hub_config,
    make_spawner,
    to_dict,
)
from .support.manifests import all_containers, env_of, rendered_hub_values

KUBE_VERSIONS = ("1.30", "1.37")
pytestmark = pytest.mark.usefixtures("kubeconfig")

STARTERS = BASE_VALUES["singleuser"]["starters"]
SIZES = BASE_VALUES["singleuser"]["sizes"]
MODES = ("sts", "static", "no-bucket")
SERVERS = ("", "project-1")


def values_for(mode: str) -> dict:
    values = copy.deepcopy(BASE_VALUES)
    if mode == "no-bucket":
        values["s3"]["bucket"] = ""
    else:
        values["s3"]["credentials"]["mode"] = mode
    return values


@pytest.fixture(scope="module")
def hub_configs(tmp_path_factory):
    return {
        mode: load_hub_config(values_for(mode), tmp_path_factory.mktemp(mode)) for mode in MODES
    }


def validate_everywhere(document: dict) -> None:
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(document, version, strict=True)


def assert_hardened(pod: dict) -> None:
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in all_containers(pod["spec"]):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, container["name"]
        assert context["runAsUser"] == 1000, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert not context.get("privileged"), container["name"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]


SECRET_VARIABLES = {
    "JUPYTERHUB_API_TOKEN",
    "JPY_API_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}


def assert_no_secrets(pod: dict, token: str) -> None:
    text = json.dumps(pod)
    for name, secret in HUB_SECRETS.items():
        assert secret not in text, f"the hub's {name} is in the pod"
    assert token not in text, "the server's API token is in clear text in the pod"
    for container in all_containers(pod["spec"]):
        for variable in container.get("env", []):
            if variable["name"] in SECRET_VARIABLES:
                assert "value" not in variable, variable
                ref = variable["valueFrom"]["secretKeyRef"]
                assert ref["name"] == f"{pod['metadata']['name']}-credentials"
        joined = " ".join(container.get("args", []) + container.get("command", []))
        assert "token" not in joined.lower() and "secret" not in joined.lower(), joined


CASES = list(itertools.product(STARTERS, SIZES, MODES, SERVERS))


@pytest.mark.parametrize(
    ("starter", "size", "mode", "server_name"),
    CASES,
    ids=[f"{t}-{s['name']}-{m}-{n or 'default'}" for t, s, m, n in CASES],
)
async def test_every_pod_is_valid_hardened_and_secret_free(
    hub_configs, starter, size, mode, server_name
):
    token = f"server-token-{starter}-{size['name']}-{mode}"
    spawner = make_spawner(
        hub_configs[mode],
        server_name=server_name,
        user_options={"profile": starter, "size": size["name"]},
        token=token,
    )
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())

    validate_everywhere(pod)
    assert_hardened(pod)
    assert_no_secrets(pod, token)

    labels = pod["metadata"]["labels"]
    assert labels[objects.COMPONENT_LABEL] == "singleuser-server"
    assert labels[objects.NAME_LABEL] == "codepilot"
    assert labels[objects.INSTANCE_LABEL] == "cp"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 60
    assert spawner.delete_grace_period == 60
    assert pod["spec"]["volumes"] == [{"name": "workspace", "emptyDir": {"sizeLimit": "10Gi"}}]

    restore, *other_init = pod["spec"]["initContainers"]
    server = pod["spec"]["containers"][0]
    assert other_init == []
    assert restore["name"] == "restore-workspace"
    assert restore["command"] == [
        "python",
        "-P",
        "-m",
        "server_extension.sync",
        "restore",
        "--progress",
        "json",
    ]
    assert restore["image"] == server["image"] == "ghcr.io/codepilot/runner:0.1.0"
    assert restore["env"] == server["env"]
    for container in (restore, server):
        assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace"}]
        assert container["workingDir"] == "/workspace"
    assert {"name": "preview", "containerPort": 3000} in server["ports"]
    assert {"name": "notebook-port", "containerPort": 8888} in server["ports"]

    env = env_of(server)
    assert env["CODEPILOT_STARTER"]["value"] == starter
    assert env["CODEPILOT_PREVIEW_PORT"]["value"] == "3000"
    assert env["JUPYTERHUB_SERVER_NAME"]["value"] == server_name
    assert env["JUPYTERHUB_ROOT_DIR"]["value"] == "/workspace"
    if mode == "no-bucket":
        assert "CODEPILOT_S3_BUCKET" not in env and "AWS_ACCESS_KEY_ID" not in env
    else:
        assert env["CODEPILOT_STORAGE"]["value"] == "sync"
        assert env["CODEPILOT_S3_BUCKET"]["value"] == "workspaces"
        assert "AWS_SECRET_ACCESS_KEY" in env
    if mode == "sts":
        assert "AWS_SESSION_TOKEN" in env
        assert env["CODEPILOT_CREDENTIALS_URL"]["value"] == (
            "http://cp-hub:8082/services/codepilot-credentials/api/credentials"
        )
    else:
        assert "AWS_SESSION_TOKEN" not in env and "CODEPILOT_CREDENTIALS_URL" not in env

    expected = objects.size_overrides(size, BASE_VALUES["singleuser"])
    resources = server["resources"]
    assert resources["requests"]["cpu"] == expected["cpu_guarantee"]
    assert resources["limits"]["cpu"] == expected["cpu_limit"]
    gigabyte = {"512M": 512 * 2**20, "1G": 2**30, "2G": 2 * 2**30, "4G": 4 * 2**30}
    assert resources["requests"]["memory"] == gigabyte[expected["mem_guarantee"]]
    assert resources["limits"]["memory"] == gigabyte[expected["mem_limit"]]


@pytest.mark.parametrize("mode", MODES)
async def test_server_secret_holds_what_the_pod_reads(hub_configs, mode):
    token = "server-token-for-the-secret-test"
    spawner = make_spawner(hub_configs[mode], token=token)
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())
    minted = {
        "access_key": "ASIAUSERKEY",
        "secret_key": "user-secret",
        "token": "user-session-token" if mode == "sts" else None,
        "expiry_time": "2030-01-01T00:00:00+00:00" if mode == "sts" else None,
    }
    secret_values = spawner.server_secret_values()
    if mode != "no-bucket":
        secret_values.update(credentials_environment(minted))
    owner = make_owner_reference(spawner.pod_name, "0c6a3a4e-2d6b-4b5e-9d47-4fd1c1f0a001")
    secret = to_dict(
        objects.make_server_secret(spawner.server_secret_name, secret_values, owner, {"a": "b"})
    )
    validate_everywhere(secret)

    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "jupyter-cp-alice",  # the release (cp) in the name
            "uid": "0c6a3a4e-2d6b-4b5e-9d47-4fd1c1f0a001",
            "blockOwnerDeletion": True,
            "controller": False,
        }
    ]
    referenced = {
        v["valueFrom"]["secretKeyRef"]["key"]
        for v in pod["spec"]["containers"][0]["env"]
        if "valueFrom" in v
    }
    assert referenced == set(secret["data"]) == set(spawner.server_secret_keys())
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["JUPYTERHUB_API_TOKEN"] == decoded["JPY_API_TOKEN"] == token
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert HUB_SECRETS[name] not in decoded.values()


def test_profile_list_is_starters_times_sizes(hub_configs):
    profiles = objects.make_profile_list(STARTERS, SIZES, BASE_VALUES["singleuser"])
    assert [p["slug"] for p in profiles] == STARTERS
    assert [p["default"] for p in profiles] == [True, False, False, False]
    for profile in profiles:
        assert profile["kubespawner_override"] == {"starter": profile["slug"]}
        choices = profile["profile_options"]["size"]["choices"]
        assert list(choices) == ["small", "medium", "inherit"]
        assert [c["default"] for c in choices.values()] == [True, False, False]
        assert choices["medium"]["kubespawner_override"] == {
            "cpu_guarantee": 0.5,
            "cpu_limit": 2,
            "mem_guarantee": "1G",
            "mem_limit": "4G",
        }
        # A size without resources of its own takes singleuser's.
        assert choices["inherit"]["kubespawner_override"] == {
            "cpu_guarantee": 0.25,
            "cpu_limit": 2,
            "mem_guarantee": "512M",
            "mem_limit": "2G",
        }


async def test_options_form_offers_every_starter_and_size(hub_configs):
    spawner = make_spawner(hub_configs["sts"], server_name="named")
    form = spawner.options_form
    for starter in STARTERS:
        assert f'value="{starter}"' in form
    for size in SIZES:
        assert size["displayName"] in form
    # The form's fields become the options a start uses.
    options = spawner.options_from_form(
        {"profile": ["flask"], "profile-option-flask--size": ["medium"]}
    )
    assert options == {"profile": "flask", "size": "medium"}


async def test_unknown_profile_is_refused(hub_configs):
    spawner = make_spawner(hub_configs["sts"], user_options={"profile": "cobol"})
    with pytest.raises(ValueError, match="No such profile: cobol"):
        await spawner.load_user_options()


@pytest.mark.parametrize(
    ("starters", "sizes", "message"),
    [
        ([], SIZES, "at least one starter"),
        (["Python"], SIZES, "not a valid starter or size name"),
        (["python", "python"], SIZES, "listed twice"),
        (["python"], [{"name": "a", "default": True}, {"name": "b", "default": True}], "only one"),
        (["python"], [{"name": "x", "cpu": {"limit": "lots"}}], "cpu.limit = 'lots'"),
        (["python"], [{"name": "x", "memory": {"limit": "1Gi"}}], "memory.limit = '1Gi'"),
    ],
)
def test_bad_profiles_are_refused_clearly(starters, sizes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        objects.make_profile_list(starters, sizes)


def test_hub_config_from_values(hub_configs):
    c = hub_configs["sts"]
    assert c.JupyterHub.spawner_class == "codepilot_spawner.CodePilotSpawner"
    assert c.JupyterHub.authenticator_class.__name__ == "SharedPasswordAuthenticator"
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allowed_users == {"alice", "bob", "tina"}
    assert c.JupyterHub.allow_named_servers is True
    assert c.JupyterHub.named_server_limit_per_user.limit == 5
    assert c.JupyterHub.hub_connect_url == "http://cp-hub:8081"
    assert c.ConfigurableHTTPProxy.api_url == "http://cp-proxy-api:8001"
    assert c.ConfigurableHTTPProxy.should_start is False
    # PostgreSQL through psycopg 3, the driver the hub extra and image ship.
    assert c.JupyterHub.db_url == HUB_SECRETS["CODEPILOT_DB_URL"].replace(
        "postgresql://", "postgresql+psycopg://"
    )
    assert c.JupyterHub.load_groups == {
        "class-a": {"users": ["alice", "bob"]},
        "class-a-teachers": {"users": ["tina"]},
    }
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    teacher_scopes = roles["class-a-teachers"]["scopes"]
    for where in ("group=class-a", "user=alice", "user=bob"):
        assert f"access:servers!{where}" in teacher_scopes
        assert f"read:servers!{where}" in teacher_scopes
    assert not any("tina" in scope or "admin:" in scope for scope in teacher_scopes)
    assert roles["class-a-teachers"]["groups"] == ["class-a-teachers"]
    assert "delete:servers" in roles["idle-culler"]["scopes"]
    assert "access:services!service=codepilot-credentials" in roles["user"]["scopes"]
    services = {service["name"]: service for service in c.JupyterHub.services}
    assert "--timeout=3600" in services["idle-culler"]["command"]
    assert "--cull-every=600" in services["idle-culler"]["command"]
    broker = services["codepilot-credentials"]
    # The hub checks it at its own pod's address; servers renew through the Service.
    assert broker["url"] == "http://127.0.0.1:8082"  # POD_IP in the pod
    assert c.CodePilotSpawner.credentials_url.startswith("http://cp-hub:8082/")
    assert broker["environment"]["CODEPILOT_S3_ROLE_ARN"].endswith(":role/codepilot-users")
    assert broker["environment"]["CODEPILOT_BROKER_IP"] == "0.0.0.0"
    assert "access:services!service=codepilot-credentials" in c.Spawner.server_token_scopes


@pytest.mark.integration
def test_old_value_name_of_the_starters_is_still_read(helm, tmp_path):
    assert load_hub_config(BASE_VALUES, tmp_path).CodePilotSpawner.starters == STARTERS
    # singleuser.templates, the old name, has no chart default: set, it is the choice.
    chart_values = {"singleuser": {"templates": ["flask", "python"]}}
    hub_values = rendered_hub_values(render(helm, chart_values, tmp_path))
    c = load_hub_config(hub_values, tmp_path)
    assert c.CodePilotSpawner.starters == ["flask", "python"]


def test_hub_config_without_sts_has_no_broker(hub_configs):
    for mode in ("static", "no-bucket"):
        names = {service["name"] for service in hub_configs[mode].JupyterHub.services}
        assert names == {"idle-culler"}


def test_authenticator_by_name_and_its_config(tmp_path):
    values = copy.deepcopy(BASE_VALUES)
    values["hub"]["authenticator"] = {
        "class": "dummy",
        "config": {"password": "a-shared-class-password", "allow_all": True},
    }
    values["hub"]["extraConfig"] = "c.JupyterHub.shutdown_on_logout = True"
    values["culler"]["enabled"] = False
    c = load_hub_config(values, tmp_path)
    assert c.JupyterHub.authenticator_class.__name__ == "DummyAuthenticator"
    assert c.DummyAuthenticator.password == "a-shared-class-password"
    assert c.DummyAuthenticator.allow_all is True
    assert c.JupyterHub.shutdown_on_logout is True
    assert "idle-culler" not in {s["name"] for s in c.JupyterHub.services}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hub": {"authenticator": {"class": "no-such-auth"}}}, "not an installed authenticator"),
        ({"s3": {"credentials": {"mode": "sts", "roleArn": ""}}}, "needs the ARN"),
        ({"s3": {"credentials": {"mode": "open"}}}, "must be one of"),
        ({"singleuser": {"previewPort": "3000"}}, "singleuser.previewPort must be int"),
        ({"culler": {"timeout": 0}}, "must be positive"),
        ({"hub": {"groups": {"g": {"pupils": ["x"]}}}}, "unknown keys: pupils"),
        ({"hub": {"teachers": "ana"}}, "hub.teachers must be list"),
        ({"hub": {"teachers": [""]}}, "hub.teachers: '' is not a user name"),
        ({"hub": {"teachers": ["ana", "b/c"]}}, "'b/c' is not a user name"),
        (
            {"hub": {"teachers": ["ana"], "groups": {"students": {"students": ["x"]}}}},
            "hub.groups.students: with hub.teachers set",
        ),
    ],
)
def test_bad_values_are_refused_clearly(tmp_path, change, message):
    values = copy.deepcopy(BASE_VALUES)
    for section, settings in change.items():
        merge(values[section], settings)
    with pytest.raises(ValuesError, match=re.escape(message)):
        load_hub_config(values, tmp_path)


def login_handler(db):
    """A real JupyterHub request handler over ``db``, as the login form's POST has."""
    from jupyterhub.handlers.base import BaseHandler
    from jupyterhub.user import UserDict
    from tornado import httputil, web

    settings = {"db": db, "hub": Hub(base_url="/hub/"), "log": logging.getLogger("test")}
    settings["users"] = UserDict(lambda: db, settings)
    request = httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("POST", "/hub/login", "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "127.0.0.1"}),
        connection=SimpleNamespace(set_close_callback=lambda callback: None),
    )
    return BaseHandler(web.Application(**settings), request)


def groups_of(db, name) -> set[str]:
    return {group.name for group in orm.User.find(db, name).groups}


@pytest.mark.integration
def test_hub_teachers_make_the_one_machine_class(helm, tmp_path):
    """``hub.teachers`` through the chart: the groups, role and login hook of one machine,
    beside a ``hub.groups`` class."""
    from jupyterhub import roles

    chart_values = {
        "hub": {
            "adminUsers": ["admin"],
            "teachers": ["ana", "Ben"],
            "groups": {"class-a": {"teachers": ["tina"], "students": ["alice"]}},
        }
    }
    hub_values = rendered_hub_values(render(helm, chart_values, tmp_path))
    assert hub_values["hub"]["teachers"] == ["ana", "Ben"]
    c = load_hub_config(hub_values, tmp_path)

    assert c.JupyterHub.load_groups == {
        "teachers": {"users": ["ana", "ben"]},  # as JupyterHub normalizes names
        "students": {"users": []},
        "class-a": {"users": ["alice"]},
        "class-a-teachers": {"users": ["tina"]},
    }
    assert {"ana", "ben", "tina", "alice"} <= c.Authenticator.allowed_users
    by_name = {role["name"]: role for role in c.JupyterHub.load_roles}
    teachers_role = by_name["teachers"]
    assert teachers_role["groups"] == ["teachers"]
    assert "access:servers!group=students" in teachers_role["scopes"]
    assert "servers!group=students" in teachers_role["scopes"]
    # ... and the class page, nothing more.
    assert "access:services!service=codepilot" in teachers_role["scopes"]
    assert all(
        scope in ("admin-ui", "access:services!service=codepilot")
        or scope.endswith("!group=students")
        for scope in teachers_role["scopes"]
    )
    assert "access:servers!group=class-a" in by_name["class-a-teachers"]["scopes"]

    # The hook as the hub calls it after a login, over a real hub database.
    db = orm.new_session_factory("sqlite://")()
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    hook = c.Authenticator.post_auth_hook
    authenticator = c.JupyterHub.authenticator_class(config=c)
    handler = login_handler(db)
    for name in ("sam", "ana", "admin", "tina"):
        authentication = {"name": name, "auth_state": None}
        assert hook(authenticator, handler, authentication) is authentication
    assert groups_of(db, "sam") == {"students"}
    assert groups_of(db, "ana") == {"teachers"}
    assert groups_of(db, "admin") == set()
    # A class teacher is nobody's student: the school's teachers cannot open her servers.
    assert groups_of(db, "tina") == set()
    # An admin moves sam to teachers: his next login keeps him there.
    orm.User.find(db, "sam").groups = [orm.Group.find(db, "teachers")]
    db.commit()
    hook(authenticator, handler, {"name": "sam", "auth_state": None})
    assert groups_of(db, "sam") == {"teachers"}
    assert hook(authenticator, handler, None) is None  # a failed login stays failed


def test_without_hub_teachers_nothing_joins_students(hub_configs):
    c = hub_configs["sts"]
    assert "students" not in c.JupyterHub.load_groups
    assert "post_auth_hook" not in c.Authenticator
    assert "teachers" not in {role["name"] for role in c.JupyterHub.load_roles}


def test_missing_values_file_is_a_clear_error(tmp_path):
    from codepilot_spawner.kubernetes.values import load_values

    with pytest.raises(ValuesError, match="cannot read the values file"):
        load_values(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ValuesError, match="must hold a mapping"):
        load_values(tmp_path / "list.yaml")


def merge(target: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


@pytest.mark.integration
def test_kubespawner_loads_lazily():
    code = (
        "import sys, codepilot_spawner; assert 'kubespawner' not in sys.modules; "
        "codepilot_spawner.CodePilotSpawner; assert 'kubespawner' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


# --- progress, as a person reads it --------------------------------------------------------


def event(reason, message="", field_path="", kind="Normal"):
    return {
        "reason": reason,
        "message": message,
        "type": kind,
        "involvedObject": {"fieldPath": field_path},
    }


RESTORE_PATH = "spec.initContainers{restore-workspace}"


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (
            event("Scheduled", "Successfully assigned cp/jupyter-alice to node-2"),
            "Server scheduled on node-2",
        ),
        (
            event("Pulling", 'Pulling image "runner"', RESTORE_PATH),
            "Pulling the runner image (the first start on a machine takes longer)",
        ),
        (event("Pulled", "Successfully pulled image", RESTORE_PATH), None),
        (
            event("Pulled", "Successfully pulled image", "spec.containers{notebook}"),
            "Runner image pulled",
        ),
        (event("Started", "Started container", RESTORE_PATH), "Restoring workspace"),
        (event("Started", "Started container", "spec.containers{notebook}"), "Starting server"),
        (event("Created", "Created container", RESTORE_PATH), None),
        (
            event("FailedScheduling", "0/3 nodes are available", kind="Warning"),
            "Waiting for room in the cluster: 0/3 nodes are available",
        ),
        (
            event("FailedMount", 'secret "x" not found', kind="Warning"),
            'Problem: secret "x" not found',
        ),
    ],
)
def test_events_are_said_plainly(raw, said):
    assert podstatus.describe_event(raw) == said


def test_restore_progress_comes_from_the_last_progress_line():
    sized = {"done": 230, "total": 2000, "bytes_done": 1_200_000, "bytes_total": 48_000_000}
    log = "\n".join(
        [
            "restoring s3://workspaces/codepilot/users/alice/default/",
            json.dumps({"done": 0, "total": 2000}),
            json.dumps(sized),
            "{not json",
            json.dumps({"event": "listing"}),
        ]
    )
    record = restoreprogress.last_record(log)
    assert record == sized
    assert restoreprogress.restore_message(record) == "Restoring workspace: 1.2/48 MB"
    assert restoreprogress.restore_share(record) == 0.025
    files_only = {"done": 230, "total": 2000}
    assert restoreprogress.restore_message(files_only) == "Restoring workspace: 230/2000 files"
    assert restoreprogress.last_record("no progress here") == {}
    assert restoreprogress.last_record(json.dumps({"done": 5, "total": 2})) == {}


def test_container_state_reads_pod_status():
    pod = {
        "status": {
            "initContainerStatuses": [
                {"name": "restore-workspace", "state": {"running": {"startedAt": "now"}}}
            ],
            "containerStatuses": [
                {"name": "notebook", "state": {"waiting": {"reason": "PodInitializing"}}}
            ],
        }
    }
    assert podstatus.container_state(pod, "restore-workspace") == "running"
    assert podstatus.container_state(pod, "notebook") == "waiting"
    assert podstatus.container_state(pod, "other") is None
    assert podstatus.container_state(None, "notebook") is None


@pytest.mark.parametrize(
    ("subdomain_host", "host_prefix"),
    [
        ("https://codepilot.example.com", True),
        ("http://codepilot.example.test", False),
        ("", False),
    ],
)
def test_over_https_the_hubs_login_cookie_is_a_host_cookie(tmp_path, subdomain_host, host_prefix):
    # Users' hosts may set cookies for the hub's domain; a __Host- cookie none of them can
    # set (tests/browser/test_ide_attacks.py shows it in Chromium on one machine).
    values = copy.deepcopy(BASE_VALUES)
    values["hub"]["subdomainHost"] = subdomain_host
    c = load_hub_config(values, tmp_path)
    assert c.JupyterHub.cookie_host_prefix_enabled is host_prefix
