import os

import pytest

from .support.helm import helm_binary
from .support.hubtools import start_hub
from .support.localhost import resolve_localhost_subdomains


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root (Unix-user isolation)")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(skip_root)


@pytest.fixture(scope="session")
def hub():
    """The one-machine hub, as `make up` runs it, shared by the tests of a session."""
    running = start_hub()
    yield running
    running.stop()


@pytest.fixture(scope="session", autouse=True)
def localhost_subdomains():
    """``*.localhost`` resolves to loopback in the test process, as in browsers: hubs
    serve each user at ``<user>.localhost`` and previews at ``*.preview.localhost``."""
    with resolve_localhost_subdomains():
        yield


@pytest.fixture(scope="module")
def localhost_names():
    """``*.localhost`` resolves to loopback in this process while a module runs, as in
    browsers. Use with ``pytestmark = pytest.mark.usefixtures("localhost_names")``."""
    with resolve_localhost_subdomains():
        yield


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The module's S3 server (its ``s3`` fixture) as the AWS chain in this process sees
    it: endpoint and credentials, for tests that run ``S3Store`` in-process."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture(scope="session")
def helm():
    """The helm binary `make install-test` puts in the venv (fetched now if missing)."""
    return helm_binary()


@pytest.fixture(scope="module")
def values_dir(tmp_path_factory):
    """A folder for the values files of one module's helm runs."""
    return tmp_path_factory.mktemp("helm-values")


@pytest.fixture(scope="module")
def kubeconfig():
    """A kubeconfig for KubeSpawner to read while a module builds spawners (none is contacted).

    Use with ``pytestmark = pytest.mark.usefixtures("kubeconfig")``.
    """
    from kubernetes_asyncio.config import kube_config

    from .support.kube_hub import kube_config_for_tests  # imports JupyterHub: only when used

    # kubernetes_asyncio reads $KUBECONFIG once, at import: point it at the file directly.
    saved = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kube_config_for_tests())
    yield
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved
