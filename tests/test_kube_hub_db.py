"""The Kubernetes hub's base URL and database: the broker URL under hub.baseUrl, and PostgreSQL.

With ``hub.baseUrl: /cp/`` the credential broker is served under ``/cp/services/...``
(JupyterHub's own prefix rule): the URL servers renew at must say so, and the broker's
routes must answer it. ``hub.db.url: postgresql://...`` must load a driver the hub extra
ships (psycopg 3) and a hub must run on a real PostgreSQL (Debian's server, started
here as its own user when the tests run as root).
"""

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from jupyterhub.services.service import Service
from tornado.httputil import HTTPServerRequest

from codepilot_spawner.credential_minter import CredentialMinter
from codepilot_spawner.kubernetes.values import database_url
from codepilot_spawner.s3settings import S3Settings
from codepilot_spawner.services import broker

from .support.hubtools import free_port, start_hub
from .support.kube_hub import BASE_VALUES, load_hub_config, make_spawner, to_dict

pytestmark = pytest.mark.usefixtures("kubeconfig")


def routes_of(app) -> list:
    return [rule.matcher.regex.pattern for rule in app.wildcard_router.rules]


async def test_broker_url_follows_the_base_url(tmp_path):
    values = copy.deepcopy(BASE_VALUES)
    values["hub"]["baseUrl"] = "/cp/"
    c = load_hub_config(values, tmp_path)
    assert c.JupyterHub.base_url == "/cp/"
    url = c.CodePilotSpawner.credentials_url
    assert url == "http://cp-hub:8082/cp/services/codepilot-credentials/api/credentials"
    # The prefix JupyterHub gives the service (JUPYTERHUB_SERVICE_PREFIX) ...
    (service,) = [s for s in c.JupyterHub.services if s["name"] == broker.SERVICE_NAME]
    prefix = Service(name=service["name"], base_url="/cp/", url=service["url"]).prefix
    # ... makes the broker answer exactly the path the servers are given.
    settings = S3Settings(bucket="b", role_arn="arn:aws:iam::1:role/r")
    app = broker.make_app(CredentialMinter(settings, environ={}), prefix, hub_auth=None)
    request = HTTPServerRequest(method="GET", uri=urlparse(url).path)
    assert app.find_handler(request).handler_class is broker.CredentialsHandler
    old_path = "/services/codepilot-credentials/api/credentials"  # what 0.1.0 gave servers
    assert app.find_handler(HTTPServerRequest(method="GET", uri=old_path)).handler_class is not (
        broker.CredentialsHandler
    )
    # And the server gets it.
    spawner = make_spawner(c)
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["CODEPILOT_CREDENTIALS_URL"] == url


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.integration
def test_postgresql_urls_use_the_shipped_driver():
    assert (
        database_url("postgresql://hub:pw@db:5432/hub") == "postgresql+psycopg://hub:pw@db:5432/hub"
    )
    assert database_url("postgres://hub@db/hub") == "postgresql+psycopg://hub@db/hub"
    assert database_url("postgresql+psycopg2://hub@db/hub") == "postgresql+psycopg2://hub@db/hub"
    assert database_url("sqlite:////srv/codepilot/jupyterhub.sqlite").startswith("sqlite:")
    # The driver is installed with the hub extra, and SQLAlchemy finds it for the URL.
    code = (
        "import psycopg, sqlalchemy; "
        "e = sqlalchemy.create_engine('postgresql+psycopg://hub@db/hub'); "
        "print(e.dialect.driver)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "psycopg"


def postgres_binaries() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


@pytest.fixture
def postgres():
    """A PostgreSQL server on 127.0.0.1 with trust auth, run as Debian's postgres user."""
    if os.geteuid() != 0:
        pytest.skip("PostgreSQL is started as the postgres user, which needs root")
    binaries = postgres_binaries()
    if binaries is None or shutil.which("runuser") is None:
        pytest.skip("no PostgreSQL server: make postgresql (apt-get install postgresql)")
    # Not under pytest's tmp_path: that is private to root, and the server is not root.
    root = Path(tempfile.mkdtemp(prefix="codepilot-postgres-"))
    data = root / "data"
    shutil.chown(root, "postgres", "postgres")
    port = free_port()

    def as_postgres(*command):
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = as_postgres(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "hub")
    assert result.returncode == 0, result.stderr
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    log = root / "postgres.log"
    result = as_postgres(
        str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"
    )
    assert result.returncode == 0, result.stderr + (log.read_text() if log.exists() else "")
    try:
        yield f"postgresql://hub@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.integration
def test_a_hub_runs_on_postgresql(postgres, tmp_path):
    import psycopg

    extra = tmp_path / "db.py"
    # The URL as the chart hands it (plain postgresql://), translated as the k8s config does.
    extra.write_text(
        "from codepilot_spawner.kubernetes.values import database_url\n"
        f"c.JupyterHub.db_url = database_url({postgres!r})\n"
    )
    hub = start_hub(env={"CODEPILOT_HUB_EXTRA_CONFIG": str(extra)}, timeout=90)
    try:
        reply = hub.api("POST", "/users/ada")
        assert reply.status_code == 201, reply.text
    finally:
        hub.stop()
    # The hub's tables, and the user it made, are in PostgreSQL.
    with psycopg.connect(postgres) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM users ORDER BY name")]
    assert "ada" in names, names
