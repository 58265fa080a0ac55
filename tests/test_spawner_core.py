"""The layer both spawners share (codepilot_spawner/spawners/core.py), the broker wiring both hub
configs use, and the pure pod builders, checked on real spawner objects without a hub."""

import copy
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from jupyterhub import orm
from jupyterhub.objects import Hub
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config

from codepilot_contracts.env import env_name
from codepilot_spawner import CodePilotLocalSpawner
from codepilot_spawner.kubernetes import objects
from codepilot_spawner.onemachine.settings import SettingsError, s3_settings
from codepilot_spawner.s3settings import STATIC, STS, S3Settings
from codepilot_spawner.services import broker
from codepilot_spawner.spawners.core import restore_progress_event
from codepilot_spawner.spawners.previewroute import PreviewRoute

from .support.kube_hub import DUMMY_KUBECONFIG, make_spawner, to_dict

ROLE = "arn:aws:iam::123456789012:role/codepilot-users"
STS_S3 = S3Settings(bucket="b", endpoint_url="http://127.0.0.1:9000", role_arn=ROLE)
STATIC_S3 = S3Settings(bucket="b", mode=STATIC)
BROKER = "http://hub:8082/services/codepilot-credentials/api/credentials"

CREDENTIALS_URL = env_name("credentials_url")


@pytest.fixture
def dummy_kubeconfig(monkeypatch):
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(DUMMY_KUBECONFIG))


def spawner_config(section: str, s3, **traits) -> Config:
    config = Config()
    config[section].s3 = s3
    config[section].credentials_url = BROKER
    config[section].starter = "flask"
    config[section].codepilot_settings = {"sync_stall_timeout": 30, "s3_bucket": "not-this"}
    config[section].preview_domain = "apps.example.net"
    config[section].preview_api_url = "http://hub:8083/services/codepilot-preview/"
    for name, value in traits.items():
        config[section][name] = value
    return config


def local_spawner(config: Config, server_name: str = "") -> CodePilotLocalSpawner:
    user = SimpleNamespace(name="alice", id=1, url="/user/alice/", escaped_name="alice", groups=[])
    spawner = CodePilotLocalSpawner(
        config=config, user=user, hub=Hub(), orm_spawner=orm.Spawner(name=server_name)
    )
    spawner.preview_port = 3000  # picked at start
    return spawner


@pytest.mark.parametrize("s3", [STS_S3, STATIC_S3, None], ids=["sts", "static", "no-bucket"])
async def test_both_spawners_give_a_server_the_same_settings(dummy_kubeconfig, s3):
    kube = make_spawner(spawner_config("CodePilotSpawner", s3, preview_relay_port=9797))
    local = local_spawner(spawner_config("CodePilotLocalSpawner", s3))
    kube_env, local_env = kube.codepilot_env(), local.codepilot_env()

    # The pod's grace period gives its flush time; everything else is the same contract.
    assert float(kube_env.pop("CODEPILOT_SYNC_FLUSH_TIMEOUT")) == 50
    assert kube_env == local_env
    assert local_env["CODEPILOT_STARTER"] == "flask"
    assert local_env["CODEPILOT_PREVIEW_PORT"] == "3000"
    assert local_env["CODEPILOT_SYNC_STALL_TIMEOUT"] == "30"
    assert local_env["CODEPILOT_PREVIEW_URL"].startswith("https://alice-")
    assert local_env["CODEPILOT_PREVIEW_URL"].endswith(".apps.example.net/")
    if s3 is None:
        # Nothing computed: codepilot_settings pass as they are.
        assert local_env["CODEPILOT_S3_BUCKET"] == "not-this"
        assert "CODEPILOT_STORAGE" not in local_env and CREDENTIALS_URL not in local_env
        return
    # Computed settings win over codepilot_settings.
    assert local_env["CODEPILOT_S3_BUCKET"] == "b"
    assert local_env["CODEPILOT_S3_PREFIX"] == "codepilot"
    assert local_env["CODEPILOT_STORAGE"] == "sync"
    # One variable, set the same way by both: only sts servers renew at the broker.
    assert local_env.get(CREDENTIALS_URL) == (BROKER if s3.mode == STS else None)


async def test_previews_need_a_domain_and_on_kubernetes_a_relay(dummy_kubeconfig):
    kube = make_spawner(spawner_config("CodePilotSpawner", None))  # no relay port
    assert "CODEPILOT_PREVIEW_URL" not in kube.codepilot_env()
    config = spawner_config("CodePilotLocalSpawner", None, preview_domain="")
    assert "CODEPILOT_PREVIEW_URL" not in local_spawner(config).codepilot_env()
    config = spawner_config(
        "CodePilotLocalSpawner", None, preview_scheme="http", preview_origin_port=8002
    )
    env = local_spawner(config, "web").codepilot_env()
    url = env["CODEPILOT_PREVIEW_URL"]
    assert url.startswith("http://alice-web-") and url.endswith(".apps.example.net:8002/")
    # Vite accepts its preview's host (it blocks hosts beyond localhost and IPs).
    assert env["__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS"] == urlsplit(url).hostname


async def test_an_upgraded_hub_reads_the_old_state_of_running_servers(dummy_kubeconfig):
    """Servers started by the version before the preview route keep running across a hub
    upgrade: each spawner reads their old state and writes this version's keys."""
    local = local_spawner(spawner_config("CodePilotLocalSpawner", None))
    local.load_state({"pid": 4242, "process_tag": "t1", "preview_port": 41234, "netns": ""})
    state = local.get_state()
    assert (local.preview_port, local.process_tag, state["pid"]) == (41234, "t1", 4242)
    assert PreviewRoute.from_state(state) == PreviewRoute("t1", 41234)
    assert "preview_port" not in state and state["process_tag"] == "t1"

    kube = make_spawner(spawner_config("CodePilotSpawner", None, preview_relay_port=9797))
    old_pod = {
        "pod_name": "jupyter-alice",
        "start_id": "a1b2c3d4e5f6a7b8",
        "preview_host": "10.1.2.3",
        "preview_port": 9797,
        "preview_app_port": 3000,
        "preview_start_check": True,
    }
    kube.load_state(old_pod)
    state = kube.get_state()
    assert state["pod_name"] == "jupyter-alice" and state["start_id"] == "a1b2c3d4e5f6a7b8"
    assert PreviewRoute.from_state(state) == PreviewRoute(
        "a1b2c3d4e5f6a7b8",
        3000,
        relay_port=9797,
        host="10.1.2.3",
        relay_checks_start=True,
        reserved_ports=(kube.port,),  # the server's own port, never previewed
    )
    assert not {"preview_host", "preview_port", "preview_app_port"} & set(state)


def test_an_explicit_storage_setting_is_kept():
    config = spawner_config("CodePilotLocalSpawner", STATIC_S3)
    config.CodePilotLocalSpawner.codepilot_settings = {"storage": "s3"}
    assert local_spawner(config).codepilot_env()["CODEPILOT_STORAGE"] == "s3"


async def test_restore_commands_differ_only_in_the_interpreter(dummy_kubeconfig):
    import sys

    kube = make_spawner(Config())
    local = local_spawner(Config())
    assert kube.restore_command[0] == "python" and local.restore_command[0] == sys.executable
    assert kube.restore_command[1:] == local.restore_command[1:]
    assert kube.starters == local.starters == ["python", "flask", "node-express", "react-vite"]
    assert kube.default_url == local.default_url == "/lab"


@pytest.mark.parametrize("section", ["CodePilotSpawner", "CodePilotLocalSpawner"])
async def test_old_trait_names_of_the_starters_still_set_them(dummy_kubeconfig, section, caplog):
    config = Config()
    config[section].templates = ["flask"]
    config[section].template = "flask"
    make = make_spawner if section == "CodePilotSpawner" else local_spawner
    with caplog.at_level("WARNING"):
        spawner = make(config)
    assert spawner.starters == ["flask"] and spawner.starter == "flask"
    assert spawner.codepilot_env()[env_name("starter")] == "flask"
    for old, new in (("templates", "starters"), ("template", "starter")):
        assert f"{section}.{old} is deprecated: use {section}.{new}" in caplog.text
    # Set at run time too (a profile's kubespawner_override, a hook); an empty list counts.
    spawner.template = "python"
    spawner.templates = []
    assert spawner.starter == "python" and spawner.starters == []
    # The new names alone warn about nothing.
    caplog.clear()
    config = Config()
    config[section].starters = ["python"]
    config[section].starter = "python"
    with caplog.at_level("WARNING"):
        make(config)
    assert "deprecated" not in caplog.text


def test_restore_records_become_progress_events():
    sized = {"done": 1, "total": 4, "bytes_done": 2_500_000, "bytes_total": 10_000_000}
    assert restore_progress_event(sized, 25, 45) == {
        "progress": 30,
        "message": "Restoring workspace: 2.5/10 MB",
    }
    assert restore_progress_event({"done": 4, "total": 4}, 50, 80) == {
        "progress": 80,
        "message": "Restoring workspace: 4/4 files",
    }
    assert restore_progress_event({"event": "done"}, 25, 45) is None
    assert restore_progress_event({"done": 5, "total": 2}, 25, 45) is None


def test_a_reserved_server_name_is_refused():
    from tornado.web import HTTPError

    with pytest.raises(HTTPError) as refused:
        local_spawner(Config(), "api").check_name()
    assert refused.value.status_code == 400
    local_spawner(Config(), "project-1").check_name()


def test_a_reserved_name_is_refused_before_the_hub_gives_it_a_slot():
    from tornado.web import HTTPError

    from codepilot_spawner.spawners.projectlimits import ProjectLimit, project_limit_of

    limit = ProjectLimit(5)
    with pytest.raises(HTTPError) as refused:  # api/users/<user>/servers/<name>, spawn/...
        limit(SimpleNamespace(path_args=["alice", "preview"]))
    assert refused.value.status_code == 400 and "'preview'" in refused.value.log_message
    assert limit(SimpleNamespace(path_args=["alice", "web"])) == 5
    assert limit(SimpleNamespace(path_args=[])) == 5  # the home page shows the limit
    assert [project_limit_of(setting) for setting in (limit, 3, lambda handler: 2)] == [5, 3, 0]


def test_a_server_learns_the_project_limit_and_may_act_on_its_owners_servers_only():
    spawner = local_spawner(Config(), "web")
    spawner.user.settings = {"named_server_limit_per_user": 4}
    assert spawner.server_settings()["project_limit"] == 4
    # The owner's own servers (filtered !user), never a user's or the hub's other rights.
    assert "servers!user" in spawner.server_token_scopes
    assert all(scope.endswith(("!user", "!server")) for scope in spawner.server_token_scopes)


# --- the broker wiring ------------------------------------------------------------------


def test_the_broker_is_wired_for_sts_only():
    assert broker.broker_wiring(None, "http://hub:8082") is None
    assert broker.broker_wiring(STATIC_S3, "http://hub:8082") is None
    assert broker.broker_wiring(S3Settings(bucket="", role_arn=ROLE), "http://hub:8082") is None
    wiring = broker.broker_wiring(STS_S3, "http://hub:8082/", "/cp/", bind_ip="0.0.0.0")
    assert wiring.credentials_url == (
        "http://hub:8082/cp/services/codepilot-credentials/api/credentials"
    )
    assert wiring.service.entry["url"] == "http://hub:8082/"
    assert wiring.service.entry["environment"]["CODEPILOT_BROKER_IP"] == "0.0.0.0"
    assert wiring.service.entry["environment"]["CODEPILOT_S3_ROLE_ARN"] == ROLE

    config, services, roles = Config(), [], []
    wiring.apply(config, config.CodePilotSpawner, services, roles)
    assert services == [wiring.service.entry] and roles == list(wiring.service.roles)
    assert config.CodePilotSpawner.credentials_url == wiring.credentials_url
    assert f"access:services!service={broker.SERVICE_NAME}" in config.Spawner.server_token_scopes


# --- one machine's S3 settings ------------------------------------------------------------


def test_one_machine_s3_settings_from_its_variables():
    assert s3_settings({}) is None
    static = s3_settings({"CODEPILOT_S3_BUCKET": "b", "AWS_REGION": "eu-west-1"})
    assert (static.mode, static.prefix, static.region) == (STATIC, "codepilot", "eu-west-1")
    sts = s3_settings(
        {
            "CODEPILOT_S3_BUCKET": "b",
            "CODEPILOT_S3_PREFIX": "",
            "CODEPILOT_S3_ROLE_ARN": ROLE,
            "CODEPILOT_S3_CREDENTIALS_DURATION": "900",
        }
    )
    assert (sts.mode, sts.prefix, sts.region, sts.duration_seconds) == (STS, "", "us-east-1", 900)
    for bad in ({"CODEPILOT_S3_CREDENTIALS_DURATION": "60"}, {"CODEPILOT_S3_PREFIX": "a*"}):
        with pytest.raises(SettingsError, match="CODEPILOT_S3_"):
            s3_settings({"CODEPILOT_S3_BUCKET": "b", "CODEPILOT_S3_ROLE_ARN": ROLE, **bad})


# --- pure pod builders --------------------------------------------------------------------


async def test_pod_builders_leave_the_pod_they_are_given_alone(dummy_kubeconfig):
    spawner = make_spawner(Config())
    await spawner.load_user_options()
    from kubespawner import KubeSpawner

    pod = await KubeSpawner.get_pod_manifest(spawner)  # before ours adds to it
    before = copy.deepcopy(to_dict(pod))

    restored = objects.add_restore_and_preview(pod, ["restore"], "/workspace", 3000)
    annotated = objects.annotate_start(restored, "start-1")
    relayed = objects.add_preview_relay(
        annotated, command=["relay"], relay_port=9797, app_port=3000, resources={}
    )

    assert to_dict(pod) == before
    assert "initContainers" not in to_dict(pod)["spec"]
    assert [c["name"] for c in to_dict(relayed)["spec"]["initContainers"]] == [
        objects.RESTORE_CONTAINER
    ]
    assert [c["name"] for c in to_dict(relayed)["spec"]["containers"]] == [
        "notebook",
        objects.RELAY_CONTAINER,
    ]
    assert objects.START_ANNOTATION not in (to_dict(restored)["metadata"].get("annotations") or {})
    assert to_dict(relayed)["metadata"]["annotations"][objects.START_ANNOTATION] == "start-1"
    labels = objects.secret_labels(to_dict(pod)["metadata"]["labels"])
    assert objects.COMPONENT_LABEL not in labels and "component" not in labels
    assert labels["hub.jupyter.org/username"] == "alice"


async def test_two_releases_in_one_namespace_never_share_a_pod_or_secret(dummy_kubeconfig):
    a = make_spawner(spawner_config("CodePilotSpawner", None, release="class-a"))
    b = make_spawner(spawner_config("CodePilotSpawner", None, release="class-b"))
    assert a.pod_name == "jupyter-class-a-alice" and b.pod_name == "jupyter-class-b-alice"
    assert a.server_secret_name != b.server_secret_name
