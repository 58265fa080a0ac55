"""Code Pilot on a real cluster: spawn, terminal, preview, stop and restore.

Runs against a release installed with the chart (the k3s workflow does that) and is
skipped unless a kubeconfig points at a reachable cluster and ``CODEPILOT_TEST_HUB_URL``
and ``CODEPILOT_TEST_ADMIN_TOKEN`` say where the release's proxy answers and which token
(a hub service with admin scopes, set through ``hub.extraConfig``) drives it.
"""

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
import requests

from .support.hubtools import RunningHub, progress_messages, wait_until
from .support.kube_hub import kubeconfig_path
from .support.terminals import run_in_terminal

pytestmark = pytest.mark.kubernetes

HUB_URL = os.environ.get("CODEPILOT_TEST_HUB_URL", "")
ADMIN_TOKEN = os.environ.get("CODEPILOT_TEST_ADMIN_TOKEN", "")
NAMESPACE = os.environ.get("CODEPILOT_TEST_NAMESPACE", "codepilot")
USER = "kube-student"


async def _cluster_version(path: Path) -> str:
    from kubernetes_asyncio import client, config

    api_client = await config.new_client_from_config(config_file=str(path))
    async with api_client:
        version = await asyncio.wait_for(client.VersionApi(api_client).get_code(), 10)
        return version.git_version


@pytest.fixture(scope="module")
def cluster():
    path = kubeconfig_path()
    if path is None:
        pytest.skip("no kubeconfig: set KUBECONFIG to run the cluster tests")
    try:
        version = asyncio.run(_cluster_version(path))
    except Exception as error:  # any failure means: no cluster to test against
        pytest.skip(f"the cluster of {path} is unreachable: {error}")
    if not (HUB_URL and ADMIN_TOKEN):
        pytest.skip("CODEPILOT_TEST_HUB_URL and CODEPILOT_TEST_ADMIN_TOKEN are not set")
    return path, version


@pytest.fixture(scope="module")
def release(cluster, tmp_path_factory):
    hub = RunningHub(HUB_URL.rstrip("/"), ADMIN_TOKEN, tmp_path_factory.mktemp("hub"), None, None)
    hub.create_user(USER)
    yield hub
    response = hub.api("DELETE", f"/users/{USER}/server")
    assert response.status_code in (202, 204, 400, 404)


async def _read(kind: str, name: str):
    from kubernetes_asyncio import client, config

    api_client = await config.new_client_from_config(config_file=str(kubeconfig_path()))
    async with api_client:
        api = client.CoreV1Api(api_client)
        try:
            return await getattr(api, f"read_namespaced_{kind}")(name, NAMESPACE)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise


def read(kind: str, name: str):
    return asyncio.run(_read(kind, name))


def test_spawn_terminal_preview_stop_restore(release):
    hub = release
    token = hub.user_token(USER)
    marker = uuid.uuid4().hex

    response = hub.api("POST", f"/users/{USER}/server", json={"profile": "python"})
    assert response.status_code in (201, 202), response.text
    messages = progress_messages(hub, USER)
    assert any(m.startswith("Server scheduled") for m in messages), messages
    assert any(m.startswith("Restoring workspace") for m in messages), messages
    assert any("ready" in m.lower() for m in messages), messages
    hub.wait_ready(USER, timeout=300)

    pod_name = f"jupyter-{os.environ.get('CODEPILOT_TEST_RELEASE', 'codepilot')}-{USER}"
    pod = read("pod", pod_name)
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.security_context.run_as_non_root is True
    secret = read("secret", f"{pod_name}-credentials")
    assert secret.metadata.owner_references[0].uid == pod.metadata.uid

    with hub.open_terminal(USER, token) as ws:
        run_in_terminal(ws, f"echo {marker} > kept.txt && echo WROTE-$((1+1))", "WROTE-2")
        run_in_terminal(
            ws, "python -m http.server $PORT >/dev/null 2>&1 & echo BG-$((2+2))", "BG-4"
        )
    headers = {"Authorization": f"token {token}"}
    # <server>/preview/ sends the browser to the preview's own origin; a script follows
    # with its token (requests drops Authorization on a redirect to another host).
    redirect = requests.get(
        f"{hub.server_url(USER)}preview/", headers=headers, allow_redirects=False, timeout=30
    )
    preview = redirect.headers["Location"]

    def listing():
        answer = requests.get(preview, headers=headers, timeout=30)
        return answer.status_code == 200 and "kept.txt" in answer.text

    wait_until(listing, 60, 1, "the preview to list the workspace")

    # Give the watcher its two seconds to mirror the file, then stop: the pod flushes.
    time.sleep(3)
    hub.stop_server(USER, timeout=180)
    wait_until(lambda: read("pod", pod_name) is None, 180, 2, "the pod to go")
    wait_until(lambda: read("secret", f"{pod_name}-credentials") is None, 60, 2, "the Secret")

    hub.start_server(USER, timeout=300, profile="python")
    with hub.open_terminal(USER, token) as ws:
        output = run_in_terminal(ws, "cat kept.txt; echo CAT-$((3+3))", "CAT-6")
    assert marker in output, output
