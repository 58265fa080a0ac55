"""The preview gateway as a Deployment of its own, checked on the chart as helm renders
it, on the hub config it feeds, and on the gateway as its pods run it.

Internet-facing, it holds none of the hub's rights (no service-account token, no hub
secret, memory of its own); its replicas share a signing key from a Secret; the hub
registers it as an external service; network policies open exactly its paths; the
preview Ingress routes to it; it runs with the limits the one-machine gateway has.
"""

import textwrap

import kubernetes_validate
import pytest
import yaml

from codepilot_spawner.services.preview.app import PreviewGatewayApp
from codepilot_spawner.services.preview.hubservice import SHARES_GROUP

from .support.helm import CHART, RELEASE, REPO_ROOT, render, run_helm
from .support.kube_hub import HUB_SECRETS, environ, load_hub_config
from .support.manifests import env_of, find, hub_container, one, rendered_hub_values, selects
from .support.value_sets import VALUE_SETS, with_changes

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kubeconfig")]

PREVIEW = with_changes(VALUE_SETS["preview"], preview__gateway={"replicas": 2})
GATEWAY = f"{RELEASE}-preview"
GATEWAY_LABELS = {
    "app.kubernetes.io/name": "codepilot",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "preview-gateway",
}


def component(name: str) -> dict:
    return {**GATEWAY_LABELS, "app.kubernetes.io/component": name}


@pytest.fixture(scope="module")
def objects(helm, values_dir) -> list[dict]:
    rendered = render(helm, PREVIEW, values_dir)
    for obj in rendered:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    return rendered


def gateway_pod(objects) -> dict:
    return one(objects, "Deployment", GATEWAY)["spec"]["template"]["spec"]


def gateway_container(objects) -> dict:
    (container,) = gateway_pod(objects)["containers"]
    return container


def test_the_gateway_runs_apart_from_the_hub_with_none_of_its_rights(objects):
    deployment = one(objects, "Deployment", GATEWAY)
    assert deployment["spec"]["replicas"] == 2
    pod = gateway_pod(objects)
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    container = gateway_container(objects)
    assert container["resources"]["limits"]["memory"] == "512Mi"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    assert not security["allowPrivilegeEscalation"] and security["runAsNonRoot"]
    env = env_of(container)
    # None of the hub's secrets, nor its database, nor its AWS identity.
    assert not set(HUB_SECRETS) - {"CODEPILOT_PREVIEW_API_TOKEN"} & set(env)
    assert not {"AWS_ACCESS_KEY_ID", "CONFIGPROXY_AUTH_TOKEN", "JPY_COOKIE_SECRET"} & set(env)
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": GATEWAY,
        "key": "api-token",
    }
    # Its own readiness: its health page, behind its Service.
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/services/codepilot-preview/health", "api")
    # The hub pod serves no preview any more.
    ports = {p["containerPort"] for p in hub_container(objects)["ports"]}
    assert not {8002, 8083} & ports
    hub_service = one(objects, "Service", f"{RELEASE}-hub")
    assert not {8002, 8083} & {p["port"] for p in hub_service["spec"]["ports"]}


def test_replicas_share_a_signing_key_from_a_secret(objects, helm, values_dir):
    secret = one(objects, "Secret", GATEWAY)
    data = secret["stringData"]
    assert len(data["signing-key"]) >= 32 and len(data["api-token"]) >= 32
    pod = gateway_pod(objects)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "signing-key"]
    assert volume["secret"]["secretName"] == GATEWAY
    args = gateway_container(objects)["args"]
    assert "--PreviewGatewayApp.signing_key_file=/etc/codepilot-preview/signing-key" in args
    assert f"--PreviewGatewayApp.shares_group={SHARES_GROUP}" in args
    assert "--PreviewGatewayApp.bind_sign_in=True" in args
    # The hub registers the gateway with the same token.
    token = env_of(hub_container(objects))["CODEPILOT_PREVIEW_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": GATEWAY, "key": "api-token"}
    # A Secret of one's own (GitOps): none generated.
    own = render(helm, with_changes(PREVIEW, preview__gateway__existingSecret="gw"), values_dir)
    assert not find(own, "Secret", GATEWAY)
    (volume,) = [v for v in gateway_pod(own)["volumes"] if v["name"] == "signing-key"]
    assert volume["secret"]["secretName"] == "gw"
    refused = run_helm(
        helm,
        *("template", RELEASE, str(CHART)),
        values=with_changes(PREVIEW, preview__gateway={"replicas": 0}),
        tmp=values_dir,
    )
    assert refused.returncode != 0 and "replicas" in refused.stderr


def test_the_preview_ingress_routes_to_the_gateway_service(objects):
    ingress = one(objects, "Ingress", GATEWAY)
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": GATEWAY, "port": {"name": "preview"}}
    service = one(objects, "Service", GATEWAY)
    assert selects(service["spec"]["selector"], GATEWAY_LABELS)
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "preview": 8002,
        "api": 8083,
    }


def peers_and_ports(rules, direction: str) -> set[tuple[str, int]]:
    """(who, port) a policy's rules open: a pod component, or "controller"/"dns"."""
    opened = set()
    for rule in rules:
        for peer in rule[direction]:
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            who = labels.get("app.kubernetes.io/component")
            if who is None:
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                system = namespace.get("kubernetes.io/metadata.name") == "kube-system"
                who = "dns" if system or "ipBlock" in peer else "controller"
            opened.update((who, port["port"]) for port in rule["ports"])
    return opened


def test_network_policies_open_exactly_the_gateways_paths(objects):
    policy = one(objects, "NetworkPolicy", GATEWAY)
    assert selects(policy["spec"]["podSelector"], GATEWAY_LABELS)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert peers_and_ports(policy["spec"]["ingress"], "from") == {
        ("controller", 8002),
        ("proxy", 8083),
        ("singleuser-server", 8083),
        ("hub", 8083),
    }
    assert peers_and_ports(policy["spec"]["egress"], "to") == {
        ("hub", 8081),
        ("singleuser-server", 9797),
        ("dns", 53),
    }
    # The hub takes the gateway's API calls and no preview traffic.
    hub = one(objects, "NetworkPolicy", f"{RELEASE}-hub")
    hub_ports = peers_and_ports(hub["spec"]["ingress"], "from")
    assert ("preview-gateway", 8081) in hub_ports
    assert not {port for _, port in hub_ports} & {8002, 8083}
    # User pods take relay connections from the gateway only.
    users = one(objects, "NetworkPolicy", f"{RELEASE}-singleuser")
    relay = {who for who, port in peers_and_ports(users["spec"]["ingress"], "from") if port == 9797}
    assert relay == {"preview-gateway"}


def test_the_hub_registers_the_gateway_as_an_external_service(objects, tmp_path):
    with environ(POD_IP="10.42.0.5"):
        c = load_hub_config(rendered_hub_values(objects), tmp_path)
    services = {s["name"]: s for s in c.JupyterHub.services}
    gateway = services["codepilot-preview"]
    assert "command" not in gateway
    assert gateway["url"] == f"http://{GATEWAY}:8083"
    assert gateway["api_token"] == HUB_SECRETS["CODEPILOT_PREVIEW_API_TOKEN"]
    env = env_of(gateway_container(objects))
    # The OAuth callback the hub accepts is the one the gateway's pods send.
    assert gateway["oauth_redirect_uri"] == env["JUPYTERHUB_OAUTH_CALLBACK_URL"]["value"]
    assert gateway["oauth_redirect_uri"] == (
        "https://codepilot-preview--service.codepilot.example.com"
        "/services/codepilot-preview/oauth_callback"
    )
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert f"groups!group={SHARES_GROUP}" in roles["codepilot-preview"]["scopes"]
    assert c.JupyterHub.load_groups[SHARES_GROUP] == {"users": []}  # its properties kept
    # User servers and the class page reach its API at its Service.
    assert c.CodePilotSpawner.preview_api_url == (
        f"http://{GATEWAY}:8083/services/codepilot-preview/"
    )


def gateway_as_its_pods_run_it(objects) -> PreviewGatewayApp:
    """The gateway app with the Deployment's arguments and environment."""
    container = gateway_container(objects)
    assert container["args"][:3] == ["python", "-m", "codepilot_spawner.services.preview"]
    env = {name: entry["value"] for name, entry in env_of(container).items() if "value" in entry}
    with environ(**env):
        app = PreviewGatewayApp()
        app.parse_command_line(container["args"][3:])
        return app, env


def test_the_gateway_on_kubernetes_keeps_the_one_machine_limits(objects, tmp_path):
    app, env = gateway_as_its_pods_run_it(objects)
    one_machine = PreviewGatewayApp()
    # Idle connections and slow headers cut, rechecks and listings as often as on one
    # machine (the same server and directory code serves both).
    for limit in ("idle_timeout", "recheck_interval", "poll_interval", "session_ttl"):
        assert getattr(app, limit) == getattr(one_machine, limit), limit
    assert (app.ip, app.port) == ("", 8002)  # every address of the pod, either family
    with environ(**env):
        assert app.hub_origin_address() == (8083, "")  # not its Service's name
        assert app.public_url == (
            "https://codepilot-preview--service.codepilot.example.com/services/codepilot-preview/"
        )
    assert app.share_levels == ["owner", "authenticated", "public"]


# --- the k3s workflow (it needs a cluster; here its shape and its values) -----------------

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "k3s.yml"


def workflow_values() -> dict:
    """The values the workflow installs with (its heredoc), with CI's variables filled."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (install,) = [
        step
        for step in workflow["jobs"]["cluster-tests"]["steps"]
        if step.get("name") == "Install the chart"
    ]
    heredoc = install["run"].split("<<VALUES\n", 1)[1].split("\nVALUES\n", 1)[0]
    text = textwrap.dedent(heredoc)
    for name, value in {
        "$IMAGE_TAG": "ci-0123abc",
        "$ADMIN_TOKEN": "a" * 64,
        "$NAMESPACE": "codepilot",
        "$NODE_IP": "10.1.2.3",
    }.items():
        text = text.replace(name, value)
    return yaml.safe_load(text)


def test_the_k3s_workflow_is_well_formed_and_opens_a_preview():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert set(workflow) >= {"name", True, "jobs"}  # YAML reads the key `on` as True
    steps = workflow["jobs"]["cluster-tests"]["steps"]
    for step in steps:
        assert ("run" in step) != ("uses" in step), step
        assert set(step) <= {"name", "run", "uses", "with", "env", "if"}, step
    names = [step.get("name") for step in steps]
    opening = steps[names.index("A preview through the Ingress, the gateway and the relay")]
    assert "react-vite" in opening["run"] and 'curl -sf "$url"' in opening["run"]
    assert names.index("Install the chart") < names.index(
        "A preview through the Ingress, the gateway and the relay"
    )


def test_the_k3s_workflow_values_pass_the_chart(helm, values_dir):
    values = workflow_values()
    assert values["preview"]["domain"] == "apps.10.1.2.3.sslip.io"
    assert values["ingress"]["enabled"] and values["networkPolicy"]["enabled"]
    objects = render(helm, values, values_dir)  # values.schema.json checks them on the way
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    assert one(objects, "Deployment", GATEWAY)["spec"]["replicas"] == 2
    ingress = one(objects, "Ingress", GATEWAY)
    assert ingress["spec"]["rules"][0]["host"] == "*.apps.10.1.2.3.sslip.io"
    assert one(objects, "NetworkPolicy", GATEWAY)
