"""CodePilotSpawner (a real KubeSpawner) started and stopped against a Kubernetes API on loopback.

The hub config is loaded from the values the chart renders; the spawner then talks real
HTTP through kubernetes_asyncio to tests/support/kubeapi.py, which records every call and, like
the kubelet, fails a pod whose Secret does not exist yet. Checked here: the Secret is
made before the pod and owned by it afterwards, a stale Secret is never read, and the
spawner's state tells the preview gateway where the pod's preview relay listens.
"""

import base64

import pytest
import yaml

from codepilot_contracts.relay import start_line
from codepilot_spawner.kubernetes import objects
from codepilot_spawner.services.preview.hosts import PreviewDomain
from codepilot_spawner.services.preview.servers import targets_from_users
from codepilot_spawner.spawners.previewroute import PreviewRoute

from .support.helm import RELEASE, helm_binary, render
from .support.kube_hub import kubespawner_on_fake_api, load_hub_config, make_spawner, to_dict
from .support.kubeapi import POD_IP
from .support.manifests import one, role_grants, secret_data

pytestmark = pytest.mark.integration

PREVIEW_VALUES = {
    "preview": {"domain": "apps.example.net", "tls": {"secretName": "apps-tls"}},
    "ingress": {"enabled": True, "host": "codepilot.example.com"},
    "hub": {"baseUrl": "/cp/"},
    "singleuser": {"terminationGracePeriodSeconds": 120},
}


def hub_values_of(values: dict, tmp_path) -> dict:
    """The values the chart hands the hub for ``values`` (its rendered values.yaml)."""
    objects_ = render(helm_binary(), values, tmp_path)
    config = one(objects_, "Secret", f"{RELEASE}-hub-config")
    return yaml.safe_load(secret_data(config)["values.yaml"])


@pytest.fixture
async def kube_api():
    """The fake API, with KubeSpawner's shared clients and reflectors pointed at it."""
    async with kubespawner_on_fake_api() as api:
        yield api


def spawner_for(api, hub_values: dict, tmp_path, token: str):
    config = load_hub_config(hub_values, tmp_path)
    config.CodePilotSpawner.k8s_api_host = api.url
    config.CodePilotSpawner.start_timeout = 30
    config.CodePilotSpawner.k8s_api_request_timeout = 5
    return make_spawner(config, token=token)


def secret_token(secret: dict) -> str:
    return base64.b64decode(secret["data"]["JUPYTERHUB_API_TOKEN"]).decode()


async def test_secret_exists_before_the_pod_and_is_owned_by_it_after(kube_api, tmp_path):
    hub_values = hub_values_of({}, tmp_path)
    spawner = spawner_for(kube_api, hub_values, tmp_path, token="token-of-this-start")
    secret_name = spawner.server_secret_name
    # A previous start's Secret, with its old token, still there.
    kube_api.secrets[("codepilot", secret_name)] = {
        "metadata": {"name": secret_name, "namespace": "codepilot"},
        "data": {"JUPYTERHUB_API_TOKEN": base64.b64encode(b"stale-token").decode()},
    }

    url = await spawner.start()

    assert url == f"http://{POD_IP}:8888"
    writes = [r for r in kube_api.requests if r[0] in ("create", "patch", "delete")]
    assert writes == [
        ("delete", "secrets", secret_name),  # the stale one goes first
        ("create", "secrets", secret_name),
        ("create", "pods", spawner.pod_name),
        ("patch", "secrets", secret_name),  # the pod becomes its owner
    ]
    seen = kube_api.secret_seen_by_pod[spawner.pod_name]
    assert seen is not None, "the pod was created before its Secret"
    assert secret_token(seen) == "token-of-this-start"
    assert seen["metadata"]["annotations"][objects.START_ANNOTATION] == spawner.start_id
    pod = kube_api.pods[("codepilot", spawner.pod_name)]
    assert pod["status"]["phase"] == "Running"
    assert pod["metadata"]["annotations"][objects.START_ANNOTATION] == spawner.start_id
    secret = kube_api.secrets[("codepilot", secret_name)]
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": spawner.pod_name,
            "uid": pod["metadata"]["uid"],
            "blockOwnerDeletion": False,  # no pods/finalizers right needed (OpenShift)
            "controller": False,
        }
    ]

    await spawner.stop()
    assert ("codepilot", spawner.pod_name) not in kube_api.pods
    assert ("codepilot", secret_name) not in kube_api.secrets


async def test_a_pod_left_by_a_killed_hub_is_replaced_and_the_new_one_has_its_secret(
    kube_api, tmp_path
):
    """KubeSpawner meets an orphan pod of the same name (409), stops it and creates the
    pod again: the Secret made for this start must still be there for the new pod."""
    spawner = spawner_for(kube_api, hub_values_of({}, tmp_path), tmp_path, token="new-token")
    orphan = {
        "metadata": {"name": spawner.pod_name, "namespace": "codepilot", "uid": "orphan"},
        "spec": {"containers": [{"name": "notebook"}]},
        "status": {"phase": "Running", "podIP": POD_IP},
    }
    kube_api.pods[("codepilot", spawner.pod_name)] = orphan

    await spawner.start()

    pod = kube_api.pods[("codepilot", spawner.pod_name)]
    assert pod["metadata"]["uid"] != "orphan"
    seen = kube_api.secret_seen_by_pod[spawner.pod_name]
    assert seen is not None and secret_token(seen) == "new-token"
    assert pod["status"]["phase"] == "Running"
    await spawner.stop()
    assert ("codepilot", spawner.server_secret_name) not in kube_api.secrets
    # Every call a start, a replaced orphan and a stop made is one the chart grants.
    called = {(kind, verb) for verb, kind, *_ in kube_api.requests}
    assert ("pods", "delete") in called and ("secrets", "create") in called
    granted = role_grants(render(helm_binary(), {}, tmp_path))
    assert called <= granted, called - granted


async def test_the_fake_kubelet_refuses_a_pod_without_its_secret(kube_api, tmp_path):
    """The check above can fail: a pod made before its Secret never becomes ready."""
    spawner = spawner_for(kube_api, hub_values_of({}, tmp_path), tmp_path, token="t" * 32)
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())
    from kubernetes_asyncio.client import CoreV1Api

    await CoreV1Api().create_namespaced_pod("codepilot", pod)
    stored = kube_api.pods[("codepilot", spawner.pod_name)]
    assert kube_api.secret_seen_by_pod[spawner.pod_name] is None
    assert stored["status"]["phase"] == "Pending"
    waiting = stored["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"


async def test_state_tells_the_gateway_where_the_relay_listens(kube_api, tmp_path):
    hub_values = hub_values_of(PREVIEW_VALUES, tmp_path)
    spawner = spawner_for(kube_api, hub_values, tmp_path, token="t" * 32)
    await spawner.start()
    first_start = spawner.start_id
    state = spawner.get_state()
    assert state["host"] == POD_IP
    assert state["relay_port"] == 9797
    assert state["app_port"] == 3000
    assert state["start_id"] == first_start and len(first_start) == 16

    # What the gateway makes of it, from the hub's user model.
    user = {"name": "alice", "groups": [], "servers": {"": {"ready": True, "state": state}}}
    (target,) = targets_from_users([user]).values()
    assert (target.route.host, target.route.port, target.route.app_port) == (POD_IP, 9797, 3000)
    assert target.start == first_start
    # The relay of this start takes only connections that name it (a reused pod IP).
    assert state["relay_checks_start"] is True
    assert target.route.connection_preamble == start_line(first_start)

    pod = kube_api.pods[("codepilot", spawner.pod_name)]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    relay = containers[objects.RELAY_CONTAINER]
    assert relay["command"][-8:] == [
        *("--listen-port", "9797", "--target-port", "3000"),
        *("--start-id", first_start),
        # The server's own port: never reached for a <port>--<label> preview host.
        *("--reserved-port", str(spawner.port)),
    ]
    assert state["relay_picks_port"] is True and state["reserved_ports"] == [spawner.port]
    assert target.route.preamble_for(5173) == start_line(first_start, 5173)
    assert relay["ports"] == [{"name": "preview-relay", "containerPort": 9797}]
    assert "env" not in relay  # no token, no keys
    env = {e["name"]: e.get("value") for e in containers["notebook"]["env"]}
    expected_url = PreviewDomain("apps.example.net", "https").url("alice", "")
    assert env["CODEPILOT_PREVIEW_URL"] == expected_url
    assert env["CODEPILOT_PREVIEW_API_URL"] == (
        f"http://{RELEASE}-preview:8083/cp/services/codepilot-preview/"
    )

    # A hub restart reads the state back; a stop clears it; a new start is a new start.
    again = spawner_for(kube_api, hub_values, tmp_path, token="t" * 32)
    again.load_state(state)
    assert again.get_state()["host"] == POD_IP
    assert again.get_state()["start_id"] == first_start
    # A server started before the check: its relay would pass the line on to the app.
    before_check = {k: v for k, v in state.items() if k != "relay_checks_start"}
    again.load_state(before_check)
    assert again.get_state()["relay_checks_start"] is False
    user["servers"][""]["state"] = again.get_state()
    assert next(iter(targets_from_users([user]).values())).route.connection_preamble == b""
    await spawner.stop()
    spawner.clear_state()
    assert PreviewRoute.from_state(spawner.get_state()) is None
    assert "host" not in spawner.get_state()
    assert "start_id" not in spawner.get_state()
    await spawner.start()
    assert spawner.start_id != first_start
    await spawner.stop()


async def test_flush_time_follows_the_grace_period(kube_api, tmp_path):
    hub_values = hub_values_of(PREVIEW_VALUES, tmp_path)
    spawner = spawner_for(kube_api, hub_values, tmp_path, token="t" * 32)
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 120
    assert spawner.delete_grace_period == 120
    assert float(env["CODEPILOT_SYNC_FLUSH_TIMEOUT"]) == 110
    # Less than the grace period, always; all of it is never left to the flush.
    for grace in (0, 1, 5, 10, 30, 60, 600):
        flush = objects.sync_flush_timeout(grace)
        assert 0 <= flush < grace or grace == flush == 0
        assert flush >= grace / 2
