"""What a second reading of the chart found a first cluster would hit next, checked on the
chart as helm renders it and on the hub config it feeds.

The deploy guide says what the chart does (the Role, the hub's ports, the default size);
the database URL can come from a Secret of one's own; the pre-puller goes where user pods
go; both Ingresses take uploads and quiet websockets whatever the class is called, and
previews have an Ingress (and annotations) of their own; the hub stays in its Service
through slow health answers and registers its services at its own pod's address; the
preview relay runs from the hub's image; an IPv6 pod gets listeners of its family and
bracketed URLs.
"""

import re
import socket

import kubernetes_validate
import pytest

from codepilot_spawner.services.supervise import listening_socket

from .support.helm import CHART, RELEASE, REPO_ROOT, render, run_helm
from .support.kube_hub import environ, load_hub_config, make_spawner, to_dict
from .support.manifests import env_of, find, hub_container, one, rendered_hub_values
from .support.value_sets import VALUE_SETS, with_changes

pytestmark = pytest.mark.usefixtures("kubeconfig")

DEPLOY_DOC = (REPO_ROOT / "docs" / "deploy.md").read_text()
PREVIEW = VALUE_SETS["preview"]
PREVIEW_STS = {**PREVIEW, "s3": VALUE_SETS["sts"]["s3"]}  # the broker and the gateway


@pytest.fixture(scope="module")
def preview_sts_values(helm, values_dir) -> dict:
    """The hub's values for previews with STS (the broker and the gateway), rendered once."""
    return rendered_hub_values(render(helm, PREVIEW_STS, values_dir))


def validate(objects):
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)


# --- the deploy guide says what the chart does -------------------------------------------------


def doc_role_grants() -> set[tuple[str, str]]:
    """(resource, verb) pairs of the guide's list under "The hub's Role grants"."""
    section = DEPLOY_DOC.split("The hub's Role grants only the calls the spawner makes:")[1]
    items = re.findall(r"^- ([a-z/]+): ([a-z, ]+?)(?: \(|;|\.)", section.split("\n\n")[1], re.M)
    grants = set()
    for resource, verbs in items:
        for verb in re.split(r", | and ", verbs):
            grants.add((resource, verb.strip()))
    return grants


@pytest.mark.integration
def test_deploy_guide_lists_the_role_the_chart_grants(helm, values_dir):
    role = one(render(helm, {}, values_dir), "Role", f"{RELEASE}-hub")
    granted = {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert doc_role_grants() == granted


def table_row(first_cells: str) -> str:
    (row,) = [line for line in DEPLOY_DOC.splitlines() if line.startswith(first_cells)]
    return row


@pytest.mark.integration
def test_deploy_guide_names_every_port_of_the_hub_service(helm, values_dir):
    service = one(render(helm, PREVIEW, values_dir), "Service", f"{RELEASE}-hub")
    row = table_row("| Deployment, Service | `<release>-hub` |")
    for port in service["spec"]["ports"]:
        assert str(port["port"]) in row, port


def test_deploy_guide_sizing_is_the_default_size():
    import yaml

    singleuser = yaml.safe_load((CHART / "values.yaml").read_text())["singleuser"]
    (default,) = [size for size in singleuser["sizes"] if size.get("default")]
    expected = (
        f"size `{default['name']}`: guarantee {default['cpu']['guarantee']} CPU / "
        f"{default['memory']['guarantee']}, limit {default['cpu']['limit']} CPU / "
        f"{default['memory']['limit']}"
    )
    assert expected in table_row("| user server ")


# --- the database URL from a Secret of one's own -----------------------------------------------


@pytest.mark.integration
def test_database_url_from_an_existing_secret(helm, values_dir):
    values = {"hub": {"db": {"existingSecret": "pg-app", "existingSecretKey": "uri"}}}
    objects = render(helm, values, values_dir)
    validate(objects)
    env = env_of(hub_container(objects))
    assert env["CODEPILOT_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "pg-app", "key": "uri"}
    generated = one(objects, "Secret", f"{RELEASE}-secrets")
    assert "db-url" not in generated.get("stringData", {})
    # An external database: no volume claim for SQLite.
    assert not find(objects, "PersistentVolumeClaim")
    volumes = one(objects, "Deployment", f"{RELEASE}-hub")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes
    # The hub's values keep to the contract (the URL comes from the environment).
    assert rendered_hub_values(objects)["hub"]["db"] == {"url": ""}
    both = {"hub": {"db": {"url": "postgresql://u:p@db/x", "existingSecret": "pg-app"}}}
    refused = run_helm(helm, "template", RELEASE, str(CHART), values=both, tmp=values_dir)
    assert refused.returncode != 0
    assert "hub.db.url and hub.db.existingSecret" in refused.stderr


# --- the pre-puller goes where user pods go ----------------------------------------------------


@pytest.mark.integration
def test_pre_puller_goes_where_user_pods_go(helm, values_dir):
    toleration = {"key": "dedicated", "operator": "Equal", "value": "users", "effect": "NoSchedule"}
    values = {
        "prePuller": {"enabled": True},
        "hub": {"imagePullSecrets": ["hub-registry"]},
        "singleuser": {
            "imagePullSecrets": ["runner-registry"],
            "nodeSelector": {"pool": "users"},
            "tolerations": [toleration],
        },
    }
    objects = render(helm, values, values_dir)
    validate(objects)
    spec = one(objects, "DaemonSet", f"{RELEASE}-image-puller")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"pool": "users"}
    assert spec["tolerations"] == [toleration]
    # The runner's registry (the image it pulls), and the hub's for the pause image.
    assert spec["imagePullSecrets"] == [{"name": "runner-registry"}, {"name": "hub-registry"}]


# --- ingress ---------------------------------------------------------------------------------

NGINX_DEFAULTS = {
    "nginx.ingress.kubernetes.io/proxy-body-size": "0",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
}


@pytest.mark.integration
@pytest.mark.parametrize("class_name", ["", "nginx", "ingress-nginx-public", "traefik"])
def test_both_ingresses_take_uploads_and_quiet_websockets_whatever_the_class(
    helm, values_dir, class_name
):
    objects = render(helm, with_changes(PREVIEW, ingress__className=class_name), values_dir)
    ingresses = find(objects, "Ingress")
    assert {i["metadata"]["name"] for i in ingresses} == {f"{RELEASE}-proxy", f"{RELEASE}-preview"}
    for ingress in ingresses:
        annotations = ingress["metadata"]["annotations"]
        assert NGINX_DEFAULTS.items() <= annotations.items(), ingress["metadata"]["name"]


TIMEOUT = "nginx.ingress.kubernetes.io/proxy-read-timeout"


@pytest.mark.integration
def test_preview_ingress_has_annotations_of_its_own(helm, values_dir):
    allowlist = {"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}
    issuer = {"cert-manager.io/cluster-issuer": "letsencrypt-dns01"}
    values = with_changes(
        PREVIEW,
        ingress__annotations=allowlist,
        preview__ingress={
            "annotations": {**issuer, "nginx.ingress.kubernetes.io/proxy-read-timeout": "86400"}
        },
    )
    objects = render(helm, values, values_dir)
    validate(objects)
    hub = one(objects, "Ingress", f"{RELEASE}-proxy")["metadata"]["annotations"]
    previews = one(objects, "Ingress", f"{RELEASE}-preview")["metadata"]["annotations"]
    assert allowlist.items() <= hub.items() and issuer.keys().isdisjoint(hub)
    assert issuer.items() <= previews.items() and allowlist.keys().isdisjoint(previews)
    assert previews[TIMEOUT] == "86400"  # a value given wins
    assert hub[TIMEOUT] == "3600"


def test_deploy_guide_documents_the_annotations_the_chart_sets():
    for annotation, value in NGINX_DEFAULTS.items():
        assert f'| `{annotation}` | `"{value}"` |' in DEPLOY_DOC


# --- the hub stays up and registers its services at its own address -----------------------------


@pytest.mark.integration
def test_hub_readiness_tolerates_what_liveness_tolerates(helm, values_dir):
    container = hub_container(render(helm, {}, values_dir))
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]

    def window(probe):
        return probe["periodSeconds"] * probe["failureThreshold"]

    # One hub: leaving the Service during a slow spell helps nobody (previews, the broker
    # and the hub API of user pods go with it); liveness decides when it is really stuck.
    assert window(readiness) >= window(liveness)


def hub_config_in_pod(values: dict, tmp_path, pod_ip: str):
    with environ(POD_IP=pod_ip):
        return load_hub_config(values, tmp_path)


@pytest.mark.integration
def test_hub_registers_its_services_at_its_pod_address(preview_sts_values, tmp_path):
    values = preview_sts_values
    c = hub_config_in_pod(values, tmp_path, "10.42.0.5")
    services = {s["name"]: s for s in c.JupyterHub.services}
    # The hub waits for these at start: through the Service they answer only once the
    # pod is Ready, which needs the hub started.
    assert services["codepilot-credentials"]["url"] == "http://10.42.0.5:8082"
    # The preview gateway, a Deployment of its own, at its Service.
    assert services["codepilot-preview"]["url"] == f"http://{RELEASE}-preview:8083"
    # User pods keep the stable Service name.
    assert c.CodePilotSpawner.credentials_url.startswith(f"http://{RELEASE}-hub:8082/")
    assert c.CodePilotSpawner.preview_api_url.startswith(f"http://{RELEASE}-preview:8083/")


# --- IPv6 pods ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_ipv6_pod_listens_on_its_family_and_brackets_its_address(preview_sts_values, tmp_path):
    values = preview_sts_values
    c = hub_config_in_pod(values, tmp_path, "fd00:10:42::5")
    assert c.JupyterHub.hub_ip == "::"
    services = {s["name"]: s for s in c.JupyterHub.services}
    broker = services["codepilot-credentials"]
    assert broker["url"] == "http://[fd00:10:42::5]:8082"
    assert broker["environment"]["CODEPILOT_BROKER_IP"] == "::"
    # The supervisor reads an IPv6 listener as the IPv6 any-address.
    sock = listening_socket(":::0")
    try:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::"
    finally:
        sock.close()
    # An IPv4 pod keeps IPv4 listeners (a kernel without IPv6 has no "::").
    v4 = hub_config_in_pod(values, tmp_path, "10.42.0.5")
    assert v4.JupyterHub.hub_ip == "0.0.0.0"


# --- the preview relay runs from the hub's image -----------------------------------------------


@pytest.mark.integration
async def test_preview_relay_runs_from_the_hub_image(helm, values_dir, tmp_path):
    values = with_changes(
        PREVIEW,
        hub__image={"name": "registry.example.com/codepilot/hub", "tag": "0.3.0"},
        hub__imagePullSecrets=["hub-registry"],
        singleuser__image={"name": "registry.example.com/codepilot/runner", "tag": "0.1.0"},
        singleuser__imagePullSecrets=["runner-registry"],
        prePuller={"enabled": True},
    )
    objects = render(helm, values, values_dir)
    validate(objects)
    spawner = make_spawner(load_hub_config(rendered_hub_values(objects), tmp_path))
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert containers["notebook"]["image"] == "registry.example.com/codepilot/runner:0.1.0"
    # A hub newer than the runner still finds a relay that speaks its version.
    assert containers["preview-relay"]["image"] == "registry.example.com/codepilot/hub:0.3.0"
    assert pod["spec"]["imagePullSecrets"] == [
        {"name": "runner-registry"},
        {"name": "hub-registry"},
    ]
    # The pre-puller pulls it where user pods run.
    puller = one(objects, "DaemonSet", f"{RELEASE}-image-puller")["spec"]["template"]["spec"]
    pulled = {c["image"] for c in puller["initContainers"]}
    assert "registry.example.com/codepilot/hub:0.3.0" in pulled


# --- the class page on Kubernetes (hub.teachers) -------------------------------------------------


@pytest.mark.integration
def test_class_page_with_hub_teachers(helm, values_dir, tmp_path, preview_sts_values):
    values = with_changes(PREVIEW_STS, hub__teachers=["ana"], hub__baseUrl="/cp/")
    objects = render(helm, values, values_dir)
    validate(objects)
    c = hub_config_in_pod(rendered_hub_values(objects), tmp_path, "10.42.0.5")
    services = {s["name"]: s for s in c.JupyterHub.services}
    page = services["codepilot"]
    # The proxy (another pod) forwards /cp/services/codepilot/ to the pod's address.
    assert page["url"] == "http://10.42.0.5:8084"
    assert page["command"][1:3] == ["-m", "codepilot_spawner.services.classpage"]
    for argument in (
        f"--ClassPageApp.proxy_url=http://{RELEASE}-proxy-public:80",
        f"--ClassPageApp.preview_api_url=http://{RELEASE}-preview:8083/cp/services/codepilot-preview/",
        "--ClassPageApp.preview_domain=apps.example.net",
        "--ClassPageApp.preview_scheme=https",
        "--ClassPageApp.subdomains=True",  # ingress.host is set: per-user hosts
        "--ClassPageApp.configured_starters=['python', 'flask', 'node-express', 'react-vite']",
    ):
        assert argument in page["command"], argument
    env = env_of(hub_container(objects))
    assert env["CODEPILOT_PROXY_PUBLIC_URL"]["value"] == f"http://{RELEASE}-proxy-public:80"
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert "groups!group=students" in roles["codepilot"]["scopes"]
    teacher_scopes = [
        scope
        for role in roles.values()
        if "teachers" in role.get("groups", [])
        for scope in role["scopes"]
    ]
    assert "access:services!service=codepilot" in teacher_scopes
    assert c.JupyterHub.default_url.__name__ == "teachers_land_on_class_page"
    # Network policies: the proxy reaches the page's port, and nothing else gains it.
    proxy_policy = one(objects, "NetworkPolicy", f"{RELEASE}-proxy")
    proxy_to_hub = {p["port"] for rule in proxy_policy["spec"]["egress"] for p in rule["ports"]}
    assert 8084 in proxy_to_hub
    hub_policy = one(objects, "NetworkPolicy", f"{RELEASE}-hub")
    (from_proxy,) = [
        rule
        for rule in hub_policy["spec"]["ingress"]
        if rule["from"][0]
        .get("podSelector", {})
        .get("matchLabels", {})
        .get("app.kubernetes.io/component")
        == "proxy"
    ]
    assert {p["port"] for p in from_proxy["ports"]} == {8081, 8084}
    # Without hub.teachers there is no page, and no port for it.
    plain = hub_config_in_pod(preview_sts_values, tmp_path, "10.42.0.5")
    assert "codepilot" not in {s["name"] for s in plain.JupyterHub.services}
    plain_proxy = one(render(helm, PREVIEW, values_dir), "NetworkPolicy", f"{RELEASE}-proxy")
    assert 8084 not in {p["port"] for rule in plain_proxy["spec"]["egress"] for p in rule["ports"]}


# --- share levels outlive a hub restart -------------------------------------------------------


@pytest.mark.integration
def test_share_levels_are_kept_in_the_hub_database_not_on_a_volume(helm, values_dir, tmp_path):
    values = with_changes(PREVIEW, hub__db={"url": "postgresql://hub:pw@db.example.com/hub"})
    objects = render(helm, values, values_dir)
    validate(objects)
    # The gateway keeps share levels in a hub group's properties (the hub's database),
    # so an external database needs no volume, previews or not.
    assert not find(objects, "PersistentVolumeClaim")
    args = one(objects, "Deployment", f"{RELEASE}-preview")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--PreviewGatewayApp.shares_group=codepilot-preview-shares" in args
    c = hub_config_in_pod(rendered_hub_values(objects), tmp_path, "10.42.0.5")
    assert "codepilot-preview-shares" in c.JupyterHub.load_groups


@pytest.mark.integration
def test_install_notes_say_where_previews_go(helm, values_dir):
    result = run_helm(
        helm,
        *("install", RELEASE, str(CHART), "--namespace", "codepilot", "--dry-run=client"),
        values=PREVIEW,
        tmp=values_dir,
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"through\n   the Ingress {RELEASE}-preview" in notes
    assert "*.apps.example.net" in notes and "apps-wildcard-tls" in notes
    assert "get theirs at their next start" in notes
