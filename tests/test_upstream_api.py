"""What the spawners rely on in the installed KubeSpawner, JupyterHub and Tornado.

``codepilot_spawner/kubernetes/upstream.py`` names what neither project documents as API; the
rest is public but used in a precise shape (hook signatures, a setter, a form parser).
Each test here reads the installed package and fails when that shape changes, so an
upgrade that breaks the spawners is caught here and not in a cluster. The behaviour
itself is exercised by test_kube_spawner_api.py (a real KubeSpawner against a fake API
server) and test_broker.py (the broker behind a real hub).
"""

import inspect
import tomllib
from importlib.metadata import version

import pytest
from jupyterhub.services.auth import HubAuth, HubAuthenticated
from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client import CoreV1Api
from kubespawner import KubeSpawner
from kubespawner import objects as kube_objects
from kubespawner import spawner as kube_spawner
from packaging.requirements import Requirement
from tornado.web import RequestHandler
from traitlets.config import Config

from codepilot_spawner import CodePilotLocalSpawner
from codepilot_spawner.kubernetes import upstream

from .support.hubtools import REPO_ROOT
from .support.kube_hub import DUMMY_KUBECONFIG

# Calls made through upstream.core_api(spawner), with the arguments given by name.
CORE_API_CALLS = {
    "create_namespaced_secret": ("namespace", "body"),
    "read_namespaced_secret": ("name", "namespace"),
    "delete_namespaced_secret": ("name", "namespace"),
    "patch_namespaced_secret": ("name", "namespace", "body"),
    "read_namespaced_pod_log": ("name", "namespace"),
}


def test_the_checked_versions_are_named():
    # Not a pin (pyproject allows a range): what the comments and checks were made on,
    # which must lie in the range the hub side declares.
    hub_requirements = {
        requirement.name: requirement.specifier
        for requirement in map(Requirement, hub_dependencies())
    }
    for package, checked in upstream.CHECKED_VERSIONS.items():
        assert checked.count(".") == 2, package
        assert version(package), package
        assert hub_requirements[package].contains(checked), (package, checked)


def hub_dependencies() -> list[str]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]["hub"]


async def test_kubespawners_api_client_is_a_core_v1_api(monkeypatch):
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(DUMMY_KUBECONFIG))
    spawner = KubeSpawner(_mock=True, config=Config())
    assert isinstance(upstream.core_api(spawner), CoreV1Api)
    for method, parameters in CORE_API_CALLS.items():
        signature = inspect.signature(getattr(CoreV1Api, method))
        assert set(parameters) <= set(signature.parameters), (method, signature)


def test_the_pod_reflector_holds_pods_by_namespace_and_name():
    assert isinstance(inspect.getattr_static(KubeSpawner, "pod_reflector"), property)
    assert isinstance(inspect.getattr_static(kube_spawner.PodReflector, "pods"), property)
    # The key upstream.reflected_pod builds.
    assert 'ref_key = f"{self.namespace}/{self.pod_name}"' in inspect.getsource(KubeSpawner)


def test_progress_events_carry_the_kubernetes_event():
    assert f"'{upstream.RAW_EVENT}': event" in inspect.getsource(KubeSpawner.progress)


def test_the_server_container_has_the_name_we_look_for():
    source = inspect.getsource(kube_objects.make_pod)
    assert f"name='{upstream.SERVER_CONTAINER}'" in source


def test_pod_hooks_get_the_spawner_and_the_pod():
    source = inspect.getsource(KubeSpawner._start)
    assert "self.modify_pod_hook(self, pod)" in source
    assert "self.after_pod_created_hook(self, pod)" in source
    for trait in ("modify_pod_hook", "after_pod_created_hook"):
        assert trait in KubeSpawner.class_trait_names(config=True)
    for trait in ("k8s_api_request_timeout", "k8s_api_request_retry_timeout"):
        assert trait in KubeSpawner.class_trait_names()


def test_kubespawners_owner_reference():
    owner = kube_objects.make_owner_reference("jupyter-alice", "uid-1")
    assert (owner.kind, owner.name, owner.uid) == ("Pod", "jupyter-alice", "uid-1")
    assert owner.block_owner_deletion is True and owner.controller is False


def test_exponential_backoff_takes_a_timeout():
    assert "timeout" in inspect.signature(exponential_backoff).parameters


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
    assert inspect.getattr_static(RequestHandler, "current_user").fset is not None
    assert "current_user" not in vars(HubAuthenticated)
    assert "sync" in inspect.signature(HubAuth.get_user).parameters
    assert "model" in inspect.signature(HubAuthenticated.check_hub_user).parameters
