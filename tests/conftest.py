import os

import pytest

from .support.helm import helm_binary
from .support.hubtools import start_hub
from .support.localhost import resolve_localhost_subdomains
from .support.noprocesses import refused


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help="Run the fast tier only: the tests not marked integration (nor browser), "
        "each of which fails if it starts a process.",
    )
    parser.addoption(
        "--integration",
        action="store_true",
        help="Run the integration tier only: the tests marked integration or browser.",
    )


def is_integration(item) -> bool:
    """Whether a test belongs to the integration tier: it starts processes (hubs, servers,
    moto, helm, Chromium). Every other test is pure and runs in ``make test-fast``."""
    return "integration" in item.keywords or "browser" in item.keywords


@pytest.hookimpl(trylast=True)  # after tests/browser/conftest.py has marked its tests
def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root (Unix-user isolation)")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(skip_root)
    for option, wanted in (("fast", False), ("integration", True)):
        if config.getoption(option):
            config.hook.pytest_deselected(
                items=[item for item in items if is_integration(item) != wanted]
            )
            items[:] = [item for item in items if is_integration(item) == wanted]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """In the fast tier no test may start a process: one that does fails, naming the mark
    it needs."""
    if not item.config.getoption("fast"):
        return (yield)
    with refused():
        return (yield)


def printable(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (a file name's undecodable byte,
    which the sync tests make on purpose) shown escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(wrapper=True, tryfirst=True)  # after every other wrapper added sections
def pytest_runtest_makereport(item, call):
    """Reports cross from a pytest-xdist worker as UTF-8: one holding a lone surrogate
    (captured logs naming such a file) would end the worker, and the run with it."""
    report = yield
    report.sections = [(title, printable(text)) for title, text in report.sections]
    if report.longrepr is not None and printable(str(report.longrepr)) != str(report.longrepr):
        report.longrepr = printable(str(report.longrepr))
    return report


def pytest_sessionstart(session):
    if session.config.getoption("fast"):
        # jupyterhub.auth imports pamela, which runs ldconfig once to find libpam: let
        # that import happen here, not inside whichever test imports it first.
        import pamela  # noqa: F401


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
