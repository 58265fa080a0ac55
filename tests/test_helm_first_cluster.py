"""What a first real cluster would hit, checked on the chart as helm renders it.

The hub's own pods reach its services through policy; user pods get pull secrets, node
selector and tolerations from the values; ingress-nginx takes JupyterLab's upload
chunks; GitOps installs keep their secrets (existingSecret); previews get a wildcard
host with TLS routed to the gateway in the hub pod, and network policies that open that
path and nothing more; the schema and the chart's checks refuse bad preview values.
"""

import copy
import json

import pytest
import yaml

from .support.helm import CHART, RELEASE, render, run_helm
from .support.kube_hub import load_hub_config, make_spawner, to_dict
from .support.manifests import (
    USER_POD_LABELS,
    env_of,
    find,
    hub_container,
    one,
    pod_templates,
    secret_data,
    selects,
)
from .support.value_sets import VALUE_SETS, with_changes

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kubeconfig")]

PREVIEW = VALUE_SETS["preview"]


def labels_of(objects, component):
    for _, _, labels in pod_templates(objects):
        if labels["app.kubernetes.io/component"] == component:
            return labels
    raise AssertionError(component)


def admitted(policy: dict, source_labels: dict, port: int) -> bool:
    """Whether an ingress NetworkPolicy admits pods with ``source_labels`` on ``port``."""
    for rule in policy["spec"]["ingress"]:
        if not any(p["port"] == port for p in rule.get("ports", [{"port": port}])):
            continue
        for peer in rule.get("from", []):
            same_namespace_pods = "podSelector" in peer and "namespaceSelector" not in peer
            if same_namespace_pods and selects(peer["podSelector"], source_labels):
                return True
    return False


def hub_policy(objects):
    return one(objects, "NetworkPolicy", f"{RELEASE}-hub")


# --- 3: the hub reaches itself through its Service ---------------------------------------------


@pytest.mark.parametrize("value_set", ["default", "sts", "preview"])
def test_hub_admits_its_own_pod(helm, values_dir, value_set):
    objects = render(helm, VALUE_SETS[value_set], values_dir)
    hub = labels_of(objects, "hub")
    policy = hub_policy(objects)
    # The culler and the broker call the hub API at <release>-hub:8081; the hub checks
    # the broker at <release>-hub:8082.
    assert admitted(policy, hub, 8081)
    assert admitted(policy, hub, 8082)
    # Still nobody else: a user pod never reaches the proxy's API through the hub rule.
    assert not admitted(policy, USER_POD_LABELS, 8001)


# --- 7: private registries and node placement of user pods -----------------------------------


async def test_user_pods_get_pull_secrets_node_selector_and_tolerations(helm, values_dir, tmp_path):
    values = {
        "singleuser": {
            "imagePullSecrets": ["registry-credentials"],
            "nodeSelector": {"pool": "users"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "users", "effect": "NoSchedule"}
            ],
        }
    }
    objects = render(helm, values, values_dir)
    hub_values = yaml.safe_load(
        secret_data(one(objects, "Secret", f"{RELEASE}-hub-config"))["values.yaml"]
    )
    spawner = make_spawner(load_hub_config(hub_values, tmp_path))
    await spawner.load_user_options()
    pod = to_dict(await spawner.get_pod_manifest())
    assert pod["spec"]["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["spec"]["nodeSelector"] == {"pool": "users"}
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "users",
        "effect": "NoSchedule",
    } in pod["spec"]["tolerations"]


def test_schema_rejects_bad_pull_secrets(helm, values_dir):
    result = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        values={"singleuser": {"imagePullSecrets": [{"name": "x"}]}},
        tmp=values_dir,
    )
    assert result.returncode != 0
    assert "imagePullSecrets" in result.stderr


# --- 8: ingress-nginx and JupyterLab's upload chunks -------------------------------------------


def ingress_of(objects):
    return one(objects, "Ingress", f"{RELEASE}-proxy")


def test_nginx_ingress_takes_upload_chunks(helm, values_dir):
    annotations = ingress_of(render(helm, VALUE_SETS["subdomain"], values_dir))["metadata"][
        "annotations"
    ]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    # An annotation given in values wins.
    mine = {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "64m"},
        }
    }
    annotations = ingress_of(render(helm, mine, values_dir))["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "64m"


# --- 9: secrets that do not regenerate ------------------------------------------------------


def test_existing_secret_keeps_tokens_stable_without_lookup(helm, values_dir):
    values = {"hub": {"existingSecret": "codepilot-tokens"}}
    first = render(helm, values, values_dir)
    second = render(helm, values, values_dir)
    # helm template (as Argo CD renders) gives the same objects every time.
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    generated = secret_data(one(first, "Secret", f"{RELEASE}-secrets"))
    assert "cookie-secret" not in generated and "proxy-token" not in generated
    hub_env = env_of(hub_container(first))
    proxy = one(first, "Deployment", f"{RELEASE}-proxy")["spec"]["template"]["spec"]
    proxy_env = env_of(proxy["containers"][0])
    for env, key in (
        (hub_env["CONFIGPROXY_AUTH_TOKEN"], "proxy-token"),
        (proxy_env["CONFIGPROXY_AUTH_TOKEN"], "proxy-token"),
        (hub_env["JPY_COOKIE_SECRET"], "cookie-secret"),
    ):
        assert env["valueFrom"]["secretKeyRef"] == {"name": "codepilot-tokens", "key": key}
    # Without it, every render without a cluster draws new ones: what GitOps would apply.
    default_a = secret_data(one(render(helm, {}, values_dir), "Secret", f"{RELEASE}-secrets"))
    default_b = secret_data(one(render(helm, {}, values_dir), "Secret", f"{RELEASE}-secrets"))
    assert default_a["cookie-secret"] != default_b["cookie-secret"]


def test_existing_secret_and_explicit_tokens_conflict(helm, values_dir):
    values = {"hub": {"existingSecret": "codepilot-tokens", "cookieSecret": "ab" * 32}}
    result = run_helm(helm, "template", RELEASE, str(CHART), values=values, tmp=values_dir)
    assert result.returncode != 0
    assert "leave hub.cookieSecret and proxy.secretToken empty" in result.stderr


# --- previews --------------------------------------------------------------------------------


def test_preview_ingress_wildcard_host_with_tls_to_the_gateway(helm, values_dir):
    objects = render(helm, PREVIEW, values_dir)
    # Two Ingresses: the hub's, and the previews' own (annotations of their own).
    previews = one(objects, "Ingress", f"{RELEASE}-preview")
    (rule,) = previews["spec"]["rules"]
    assert rule["host"] == "*.apps.example.net"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-preview", "port": {"name": "preview"}}
    assert previews["spec"]["tls"] == [
        {"secretName": "apps-wildcard-tls", "hosts": ["*.apps.example.net"]}
    ]
    hub_ingress = ingress_of(objects)
    # The hub's host and, per-user hosts being the default, its wildcard.
    hub_hosts = ["codepilot.example.com", "*.codepilot.example.com"]
    assert [rule["host"] for rule in hub_ingress["spec"]["rules"]] == hub_hosts
    for hub_rule in hub_ingress["spec"]["rules"]:
        backend = hub_rule["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == f"{RELEASE}-proxy-public"
    assert hub_ingress["spec"]["tls"] == [{"secretName": "codepilot-tls", "hosts": hub_hosts}]
    service = one(objects, "Service", f"{RELEASE}-preview")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["preview"]["port"] == 8002 and ports["api"]["port"] == 8083
    # The hub learns the resolved settings.
    hub_values = yaml.safe_load(
        secret_data(one(objects, "Secret", f"{RELEASE}-hub-config"))["values.yaml"]
    )
    assert hub_values["preview"] == {
        "domain": "apps.example.net",
        "hubUrl": "https://codepilot.example.com",
        "scheme": "https",
        "relayPort": 9797,
        "shareLevels": ["owner", "authenticated", "public"],
        "relayImage": {
            "name": "ghcr.io/codepilot/hub",
            "tag": "0.1.0",
            "pullPolicy": "IfNotPresent",
        },
        "relayImagePullSecrets": [],
        "gatewayUrl": f"http://{RELEASE}-preview:8083",
        "publicUrl": "https://codepilot-preview--service.codepilot.example.com"
        "/services/codepilot-preview/",
    }


def test_previews_off_by_default(helm, values_dir):
    objects = render(helm, {}, values_dir)
    service = one(objects, "Service", f"{RELEASE}-hub")
    assert {p["name"] for p in service["spec"]["ports"]} == {"hub", "credentials"}
    for policy in find(objects, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert not any(p.get("port") in (8002, 8083, 9797) for p in rule.get("ports", []))


def test_preview_network_policies_open_the_new_path_only(helm, values_dir):
    objects = render(helm, PREVIEW, values_dir)
    hub = labels_of(objects, "hub")
    proxy = labels_of(objects, "proxy")
    gateway = labels_of(objects, "preview-gateway")
    policy = gateway_policy(objects)
    # Ingress controller -> gateway's public port, and only through its peer rule.
    (controller_rule,) = [
        rule for rule in policy["spec"]["ingress"] if any(p["port"] == 8002 for p in rule["ports"])
    ]
    assert controller_rule["ports"] == [{"port": 8002, "protocol": "TCP"}]
    assert controller_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert not admitted(policy, USER_POD_LABELS, 8002)
    # The gateway's pages (sign-in, share API): from the proxy and user servers.
    assert admitted(policy, proxy, 8083)
    assert admitted(policy, USER_POD_LABELS, 8083)
    # The hub pod serves no preview port.
    assert not admitted(hub_policy(objects), proxy, 8083)
    proxy_policy = one(objects, "NetworkPolicy", f"{RELEASE}-proxy")

    def egress_ports(policy, labels):
        return sorted(
            p["port"]
            for rule in policy["spec"]["egress"]
            for peer in rule.get("to", [])
            if "podSelector" in peer and selects(peer["podSelector"], labels)
            for p in rule["ports"]
        )

    assert egress_ports(proxy_policy, hub) == [8081]
    assert egress_ports(proxy_policy, gateway) == [8083]
    # Gateway -> the relay of user pods; the app's own port stays closed.
    users = one(objects, "NetworkPolicy", f"{RELEASE}-singleuser")
    assert admitted(users, gateway, 9797)
    assert not admitted(users, proxy, 9797) and not admitted(users, hub, 9797)
    assert not admitted(users, gateway, 3000)
    assert egress_ports(users, hub) == [8081, 8082]
    assert egress_ports(users, gateway) == [8083]


def gateway_policy(objects) -> dict:
    return one(objects, "NetworkPolicy", f"{RELEASE}-preview")


def test_preview_controller_peers_are_configurable(helm, values_dir):
    values = copy.deepcopy(PREVIEW)
    values["networkPolicy"] = {
        "ingressControllerPeers": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
            }
        ]
    }
    policy = gateway_policy(render(helm, values, values_dir))
    (rule,) = [r for r in policy["spec"]["ingress"] if any(p["port"] == 8002 for p in r["ports"])]
    assert rule["from"] == values["networkPolicy"]["ingressControllerPeers"]


def with_preview(**changes) -> dict:
    return with_changes(PREVIEW, **changes)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (with_preview(preview__domain="Apps.Example.NET"), "/preview/domain"),
        (with_preview(preview__domain="*.apps.example.net"), "/preview/domain"),
        (with_preview(preview__shareLevels=["public"]), "shareLevels"),
        (with_preview(preview__shareLevels=["owner", "everyone"]), "shareLevels"),
        (with_preview(preview__relayPort=8888), "relayPort"),
        (with_preview(preview__relayPort=80), "relayPort"),
        (with_preview(preview__extra=True), "extra"),
        (with_preview(preview__tls={"secret": "x"}), "secret"),
        (with_preview(networkPolicy__ingressControllerPeers=[]), "ingressControllerPeers"),
        (with_preview(preview__relayPort=3000), "must differ from singleuser.previewPort"),
        (with_preview(preview__domain="example.com"), "holds the hub's host"),
        (with_preview(preview__domain="codepilot.example.com"), "holds the hub's host"),
        (with_preview(ingress__enabled=False), "needs the Ingress"),
        (with_preview(ingress__host=""), "needs the hub's public URL"),
    ],
)
def test_bad_preview_values_are_refused(helm, values_dir, values, message):
    result = run_helm(helm, "template", RELEASE, str(CHART), values=values, tmp=values_dir)
    assert result.returncode != 0, f"accepted: {values}"
    assert message in result.stderr, result.stderr


async def test_hub_config_registers_the_gateway_from_the_values(helm, values_dir, tmp_path):
    objects = render(helm, with_preview(hub__baseUrl="/cp/"), values_dir)
    hub_values = yaml.safe_load(
        secret_data(one(objects, "Secret", f"{RELEASE}-hub-config"))["values.yaml"]
    )
    c = load_hub_config(hub_values, tmp_path)
    services = {s["name"]: s for s in c.JupyterHub.services}
    gateway = services["codepilot-preview"]
    # A Deployment of its own, behind its Service: the hub runs nothing.
    assert gateway["url"] == f"http://{RELEASE}-preview:8083"
    assert "command" not in gateway
    args = one(objects, "Deployment", f"{RELEASE}-preview")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    for argument in (
        "--PreviewGatewayApp.domain=apps.example.net",
        "--PreviewGatewayApp.scheme=https",
        "--PreviewGatewayApp.url_port=0",
        "--PreviewGatewayApp.port=8002",
        "--PreviewGatewayApp.hub_url=https://codepilot.example.com",
        "--PreviewGatewayApp.share_levels=owner",
        "--PreviewGatewayApp.share_levels=public",
    ):
        assert argument in args
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert len(roles) == len(c.JupyterHub.load_roles), "a role name twice stops the hub"
    assert "access:services!service=codepilot-preview" in roles["user"]["scopes"]
    assert "admin:server_state" in roles["codepilot-preview"]["scopes"]
    assert c.CodePilotSpawner.preview_relay_port == 9797
    assert c.CodePilotSpawner.preview_api_url == (
        f"http://{RELEASE}-preview:8083/cp/services/codepilot-preview/"
    )


def test_tls_ending_at_a_load_balancer_still_gives_https_previews(helm, values_dir):
    values = with_preview(preview__scheme="https")
    values["preview"]["tls"] = {"secretName": ""}  # no certificate on the Ingress
    hub_values = yaml.safe_load(
        secret_data(one(render(helm, values, values_dir), "Secret", f"{RELEASE}-hub-config"))[
            "values.yaml"
        ]
    )
    assert hub_values["preview"]["scheme"] == "https"
    refused = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        values=with_preview(preview__scheme="ftp"),
        tmp=values_dir,
    )
    assert refused.returncode != 0 and "/preview/scheme" in refused.stderr


@pytest.mark.parametrize("switch", [True, False])
def test_the_user_server_switches_reach_every_server(helm, values_dir, tmp_path, switch):
    objects = render(
        helm,
        with_preview(singleuser__codeIntelligence=switch, singleuser__collaboration=switch),
        values_dir,
    )
    hub_values = yaml.safe_load(
        secret_data(one(objects, "Secret", f"{RELEASE}-hub-config"))["values.yaml"]
    )
    c = load_hub_config(hub_values, tmp_path)
    settings = c.CodePilotSpawner.codepilot_settings
    assert settings == {"code_intelligence": switch, "collaboration": switch}
