"""The Kubernetes hub config, loaded as the hub loads it, and spawners made from it.

``load_hub_config`` runs hub_config/jupyterhub_config.py on a values file, as the chart's
hub pod does; ``make_spawner`` makes a CodePilotSpawner as the hub would, without a
cluster (nothing here contacts one).
"""

import contextlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import yaml
from jupyterhub import orm
from jupyterhub.objects import Hub
from kubernetes_asyncio.client import ApiClient
from traitlets.config.loader import PyFileConfigLoader

from .paths import REPO_ROOT

HUB_CONFIG_DIR = REPO_ROOT / "hub_config"
DUMMY_KUBECONFIG = REPO_ROOT / "tests" / "kubeconfig_dummy.yaml"

# Secrets the hub holds: none of them may ever appear in a user pod.
HUB_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAHUBOWNKEY0000000",
    "AWS_SECRET_ACCESS_KEY": "hub-own-secret-access-key-never-in-pods",
    "CONFIGPROXY_AUTH_TOKEN": "proxy-token-never-in-pods",
    "JPY_COOKIE_SECRET": "c0ffee" * 10,
    "CODEPILOT_DB_URL": "postgresql://hub:db-password-never-in-pods@db/hub",
    "CODEPILOT_PREVIEW_API_TOKEN": "preview-gateway-token-never-in-pods",
}

# The chart's defaults (values.md), with three sizes and a bucket.
BASE_VALUES = {
    "hub": {
        "baseUrl": "/",
        "adminUsers": ["admin"],
        "namedServers": {"enabled": True, "limit": 5},
        "groups": {"class-a": {"teachers": ["tina"], "students": ["alice", "bob"]}},
    },
    "singleuser": {
        "image": {"name": "ghcr.io/codepilot/runner", "tag": "0.1.0", "pullPolicy": "IfNotPresent"},
        "previewPort": 3000,
        "uid": 1000,
        "workspaceSizeLimit": "10Gi",
        "startTimeout": 300,
        "terminationGracePeriodSeconds": 60,
        "cpu": {"guarantee": 0.25, "limit": 2},
        "memory": {"guarantee": "512M", "limit": "2G"},
        "starters": ["python", "flask", "node-express", "react-vite"],
        "sizes": [
            {
                "name": "small",
                "displayName": "Small (1 CPU, 1 GB)",
                "cpu": {"guarantee": 0.25, "limit": 1},
                "memory": {"guarantee": "512M", "limit": "1G"},
                "default": True,
            },
            {
                "name": "medium",
                "displayName": "Medium (2 CPU, 4 GB)",
                "cpu": {"guarantee": 0.5, "limit": 2},
                "memory": {"guarantee": "1G", "limit": "4G"},
            },
            {"name": "inherit", "displayName": "Singleuser defaults"},
        ],
    },
    "s3": {
        "bucket": "workspaces",
        "prefix": "codepilot",
        "endpointUrl": "",
        "region": "us-east-1",
        "credentials": {
            "mode": "sts",
            "roleArn": "arn:aws:iam::123456789012:role/codepilot-users",
            "durationSeconds": 3600,
        },
    },
    "culler": {"enabled": True, "timeout": 3600, "every": 600},
}


@contextlib.contextmanager
def environ(**variables):
    """``os.environ`` with ``variables`` set, as it was before afterwards."""
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def hub_environ(values_path: Path) -> dict:
    return {
        **HUB_SECRETS,
        "CODEPILOT_VALUES_FILE": str(values_path),
        "CODEPILOT_HUB_CONNECT_URL": "http://cp-hub:8081",
        "CODEPILOT_PROXY_API_URL": "http://cp-proxy-api:8001",
        "POD_NAMESPACE": "codepilot",
    }


def load_hub_config(values: dict, directory: Path):
    """The traitlets Config that hub_config/jupyterhub_config.py makes of ``values``."""
    values_path = directory / "values.yaml"
    values_path.write_text(yaml.safe_dump(values))
    with environ(**hub_environ(values_path)):
        return PyFileConfigLoader("jupyterhub_config.py", path=str(HUB_CONFIG_DIR)).load_config()


def make_spawner(
    config,
    username="alice",
    server_name="",
    user_options=None,
    token="t" * 32,
    spawner_class=None,
):
    """A CodePilotSpawner (or another KubeSpawner) as the hub makes one; must run inside
    an event loop."""
    if spawner_class is None:
        from codepilot_spawner import CodePilotSpawner as spawner_class

    hub = Hub(ip="0.0.0.0", port=8081, base_url="/hub/", connect_url="http://cp-hub:8081")
    user = SimpleNamespace(
        name=username, id=1, url=f"/user/{username}/", escaped_name=username, groups=[]
    )
    spawner = spawner_class(
        config=config, user=user, hub=hub, orm_spawner=orm.Spawner(name=server_name)
    )
    spawner.api_token = token
    spawner.user_options = user_options or {}
    return spawner


def to_dict(model) -> dict:
    """A kubernetes model as the API server sees it (camelCase, no nulls)."""
    return json.loads(json.dumps(ApiClient().sanitize_for_serialization(model)))


def kubeconfig_path() -> Path | None:
    configured = os.environ.get("KUBECONFIG")
    candidates = [Path(p) for p in configured.split(os.pathsep)] if configured else []
    candidates.append(Path.home() / ".kube" / "config")
    return next((path for path in candidates if path.is_file()), None)


def kube_config_for_tests() -> Path:
    """A real kubeconfig when there is one (construction never contacts it), else the dummy."""
    return kubeconfig_path() or DUMMY_KUBECONFIG


@contextlib.asynccontextmanager
async def kubespawner_on_fake_api():
    """A fake Kubernetes API (``kubeapi.py``) with KubeSpawner's shared clients and
    reflectors pointed at it, as they were before afterwards."""
    from kubernetes_asyncio.config import kube_config
    from kubespawner import KubeSpawner, clients

    from .kubeapi import running_fake_api

    await KubeSpawner._stop_all_reflectors()
    saved_clients = dict(clients._client_cache)
    clients._client_cache.clear()
    saved_location = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(DUMMY_KUBECONFIG)
    try:
        async with running_fake_api() as api:
            yield api
            await KubeSpawner._stop_all_reflectors()
    finally:
        clients._client_cache.clear()
        clients._client_cache.update(saved_clients)
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved_location
