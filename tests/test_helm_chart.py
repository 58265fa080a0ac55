"""The Helm chart, rendered by the real helm with several value sets.

Each value set is rendered once per module (`helm template`); the tests then check the
objects: Kubernetes schemas (strict, two API versions), security contexts, network
policies, secrets, selectors, RBAC against the API calls the spawner code makes, and the
hub's values per the contract with hub_config/jupyterhub_config.py.
"""

import ipaddress
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .support.helm import CHART, NAMESPACE, RELEASE, REPO_ROOT, install_dry_run, render, run_helm
from .support.manifests import (
    USER_POD_LABELS,
    all_containers,
    env_of,
    find,
    hub_container,
    one,
    pod_templates,
    rendered_hub_values,
    role_grants,
    secret_data,
    selects,
)
from .support.value_sets import (
    COOKIE_SECRET,
    DB_URL,
    OAUTH_SECRET,
    PROXY_TOKEN,
    STATIC_KEY_ID,
    STATIC_SECRET,
    VALUE_SETS,
)

KUBERNETES_VERSIONS = ["1.30", "1.37"]
METADATA_V4 = "169.254.169.254"
METADATA_V6 = "fd00:ec2::254"  # AWS's IPv6 instance metadata address

# The subdomain host the hub gets per value set: the given one, else from ingress.host.
SUBDOMAIN_HOSTS = {
    "subdomain": "https://codepilot.example.com",
    "preview": "https://codepilot.example.com",
    "everything": "http://ide.example.com",
}

# What the hub config reads (values.md contract); the rendered values.yaml holds exactly these.
CONTRACT_KEYS = {
    "hub": {
        "baseUrl",
        "subdomainHost",
        "adminUsers",
        "authenticator",
        "namedServers",
        "teachers",
        "groups",
        "db",
        "extraConfig",
    },
    "singleuser": {
        "image",
        "previewPort",
        "uid",
        "workspaceSizeLimit",
        "startTimeout",
        "terminationGracePeriodSeconds",
        "cpu",
        "memory",
        "starters",
        "sizes",
        "extraEnv",
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "codeIntelligence",
        "collaboration",
    },
    "s3": {"bucket", "prefix", "endpointUrl", "region", "existingSecret", "credentials"},
    "culler": {"enabled", "timeout", "every"},
    # Resolved by the chart: hubUrl from ingress.host, scheme from preview.tls.
    # relayImage and its pull secrets are the hub's own (the relay speaks the hub's version).
    # gatewayUrl and publicUrl: the gateway's Service and public URL, for its registration.
    "preview": {
        "gatewayUrl",
        "publicUrl",
        "domain",
        "hubUrl",
        "scheme",
        "relayPort",
        "shareLevels",
        "relayImage",
        "relayImagePullSecrets",
    },
}


@pytest.fixture(scope="module")
def rendered(helm, values_dir) -> dict[str, list[dict]]:
    """Every value set rendered once: name -> list of objects."""
    return {name: render(helm, values, values_dir) for name, values in VALUE_SETS.items()}


# --- the chart as a whole ----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint(helm, values_dir, value_set):
    result = run_helm(
        helm, "lint", "--strict", str(CHART), values=VALUE_SETS[value_set], tmp=values_dir
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_objects_validate_strictly(rendered, value_set, version):
    objects = rendered[value_set]
    assert objects
    for obj in objects:
        # Raises on an unknown field, a wrong type or a kind the version does not have.
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.integration
def test_strict_validation_catches_an_unknown_field(rendered):
    """The validation above would notice a misspelt field (it is not vacuous)."""
    deployment = json.loads(json.dumps(one(rendered["default"], "Deployment", f"{RELEASE}-hub")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30", strict=True)


@pytest.mark.integration
def test_value_sets_render_the_objects_they_configure(rendered):
    kinds = {name: sorted({o["kind"] for o in objs}) for name, objs in rendered.items()}
    expected_default = [
        "Deployment",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    assert kinds["default"] == expected_default
    assert "Ingress" in kinds["subdomain"] and "Ingress" not in kinds["ingress-off"]
    assert "PersistentVolumeClaim" not in kinds["external-db"]
    assert "DaemonSet" in kinds["everything"]
    assert not find(rendered["default"], "ConfigMap")


# --- security ----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_container_is_locked_down(rendered, value_set):
    checked = 0
    for owner, pod_spec, _labels in pod_templates(rendered[value_set]):
        pod_context = pod_spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, owner["metadata"]["name"]
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in all_containers(pod_spec):
            where = f"{owner['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] > 0, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "privileged" not in context or context["privileged"] is False, where
            checked += 1
    assert checked >= 2


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_only_the_hub_gets_a_service_account_token(rendered, value_set):
    for owner, pod_spec, labels in pod_templates(rendered[value_set]):
        is_hub = labels["app.kubernetes.io/component"] == "hub"
        assert pod_spec["automountServiceAccountToken"] is is_hub, owner["metadata"]["name"]


def images_in(objects):
    return {c["image"] for _, spec, _ in pod_templates(objects) for c in all_containers(spec)}


@pytest.mark.integration
def test_images_are_pinned(rendered):
    for image in images_in(rendered["everything"]):
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", image
        assert re.fullmatch(r"[0-9][0-9A-Za-z_.-]*", tag), image


# --- network policies --------------------------------------------------------------------


def port_matches(rule_ports, port, protocol):
    if not rule_ports:
        return True
    return any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in rule_ports
    )


def egress_allows_address(policy: dict, address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether a NetworkPolicy lets its pods reach an address outside the cluster's pods.

    Only ipBlock peers can match an outside address; a rule with no `to` matches all.
    """
    if "Egress" not in policy["spec"]["policyTypes"]:
        return True
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"].get("egress", []):
        if not port_matches(rule.get("ports"), port, protocol):
            continue
        if not rule.get("to"):
            return True
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if not block:
                continue
            cidr = ipaddress.ip_network(block["cidr"])
            if ip.version != cidr.version or ip not in cidr:
                continue
            excluded = [ipaddress.ip_network(e) for e in block.get("except", [])]
            if not any(ip in e for e in excluded if e.version == ip.version):
                return True
    return False


def singleuser_policy(objects):
    return one(objects, "NetworkPolicy", f"{RELEASE}-singleuser")


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_user_servers_never_reach_cloud_metadata(rendered, value_set):
    policy = singleuser_policy(rendered[value_set])
    assert selects(policy["spec"]["podSelector"], USER_POD_LABELS)
    for address in (METADATA_V4, "169.254.170.2", METADATA_V6):
        for port, protocol in ((80, "TCP"), (443, "TCP"), (53, "UDP"), (53, "TCP")):
            assert not egress_allows_address(policy, address, port, protocol), (address, port)


@pytest.mark.integration
def test_user_servers_reach_the_internet_but_not_private_ranges_by_default(rendered):
    policy = singleuser_policy(rendered["default"])
    assert egress_allows_address(policy, "93.184.215.14", 443)
    assert egress_allows_address(policy, "2606:4700::1111", 443)
    for internal in ("10.0.0.10", "172.20.1.1", "192.168.1.1", "100.64.0.1"):
        assert not egress_allows_address(policy, internal, 443), internal
        assert not egress_allows_address(policy, internal, 6443), internal
    # DNS is the one way into private ranges.
    assert egress_allows_address(policy, "10.0.0.10", 53, "UDP")


@pytest.mark.integration
def test_private_ranges_open_only_when_asked(rendered):
    policy = singleuser_policy(rendered["everything"])
    assert egress_allows_address(policy, "10.20.30.40", 443)
    assert egress_allows_address(policy, "10.20.30.40", 9000)
    assert not egress_allows_address(policy, METADATA_V4, 80)


def test_metadata_check_would_notice_an_open_policy():
    """The checker above is not vacuous: an allow-all egress rule is caught."""
    open_policy = {"spec": {"policyTypes": ["Egress"], "egress": [{}]}}
    assert egress_allows_address(open_policy, METADATA_V4, 80)
    leaky = {
        "spec": {
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}],
        }
    }
    assert egress_allows_address(leaky, METADATA_V4, 80)


def ingress_sources(policy) -> list[dict]:
    return [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [{}])]


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_user_servers_take_traffic_only_from_proxy_and_hub(rendered, value_set):
    objects = rendered[value_set]
    policy = singleuser_policy(objects)
    assert "Ingress" in policy["spec"]["policyTypes"]
    pods = {
        labels["app.kubernetes.io/component"]: labels for _, _, labels in pod_templates(objects)
    }
    allowed = set()
    for rule in policy["spec"]["ingress"]:
        assert rule["from"], "an ingress rule without sources admits everyone"
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, peer  # no ipBlock, no namespaceSelector
            matched = [c for c, labels in pods.items() if selects(peer["podSelector"], labels)]
            assert len(matched) == 1, peer
            for port in rule["ports"]:
                allowed.add((matched[0], port["port"], port["protocol"]))
    expected = {("proxy", 8888, "TCP"), ("hub", 8888, "TCP")}
    if VALUE_SETS[value_set].get("preview", {}).get("domain"):
        # The preview gateway reaches the relay, never the app's own port.
        expected.add(("preview-gateway", 9797, "TCP"))
    assert allowed == expected


@pytest.mark.integration
def test_proxy_api_is_reachable_only_from_the_hub(rendered):
    objects = rendered["default"]
    policy = one(objects, "NetworkPolicy", f"{RELEASE}-proxy")
    hub_labels = one(objects, "Deployment", f"{RELEASE}-hub")["spec"]["template"]["metadata"][
        "labels"
    ]
    for rule in policy["spec"]["ingress"]:
        if any(p["port"] == 8001 for p in rule["ports"]):
            assert [selects(peer["podSelector"], hub_labels) for peer in rule["from"]] == [True]
    assert not egress_allows_address(policy, "93.184.215.14", 443)


@pytest.mark.integration
def test_network_policies_can_be_switched_off(helm, values_dir):
    objects = render(helm, {"networkPolicy": {"enabled": False}}, values_dir)
    assert not find(objects, "NetworkPolicy")


# --- secrets -----------------------------------------------------------------------------


def secret_values(objects, value_set) -> set[str]:
    """Every secret string of a render: what its Secrets hold and what values gave."""
    found = set()
    for secret in find(objects, "Secret"):
        for key, value in secret_data(secret).items():
            if key == "values.yaml":
                continue  # the hub's settings; its secret parts are listed below
            found.add(value)
    found.update(
        {DB_URL, "db-password-7f3a", STATIC_SECRET, COOKIE_SECRET, PROXY_TOKEN, OAUTH_SECRET}
    )
    return {v for v in found if v}


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_no_secret_value_outside_a_secret(rendered, value_set):
    objects = rendered[value_set]
    secrets = secret_values(objects, value_set)
    assert len(secrets) >= 2
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for secret in secrets:
            assert secret not in text, f"{obj['kind']}/{obj['metadata']['name']} holds a secret"


@pytest.mark.integration
def test_generated_secrets_are_random_hex_and_explicit_ones_win(helm, rendered, values_dir):
    first = secret_data(one(rendered["default"], "Secret", f"{RELEASE}-secrets"))
    again = secret_data(one(render(helm, {}, values_dir), "Secret", f"{RELEASE}-secrets"))
    for key in ("proxy-token", "cookie-secret"):
        assert re.fullmatch(r"[0-9a-f]{64}", first[key]), key
        # Without a cluster there is no Secret to look up, so every render draws anew.
        assert first[key] != again[key], key
    given = secret_data(one(rendered["everything"], "Secret", f"{RELEASE}-secrets"))
    assert given["cookie-secret"] == COOKIE_SECRET
    assert given["proxy-token"] == PROXY_TOKEN


def test_secrets_template_keeps_existing_values_on_upgrade():
    """Upgrades must read back the live Secret (lookup) before generating anything."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    block = helpers.split('define "codepilot.persistentSecret"')[1].split("{{- end }}\n")[0]
    lookup_at = block.index('lookup "v1" "Secret"')
    assert lookup_at < block.index("randAlphaNum")
    assert "b64dec" in block


@pytest.mark.integration
def test_hub_and_proxy_share_the_proxy_token(rendered):
    objects = rendered["default"]
    proxy = one(objects, "Deployment", f"{RELEASE}-proxy")["spec"]["template"]["spec"]
    proxy_env = env_of(proxy["containers"][0])
    hub_env = env_of(hub_container(objects))
    ref = {"secretKeyRef": {"name": f"{RELEASE}-secrets", "key": "proxy-token"}}
    assert proxy_env["CONFIGPROXY_AUTH_TOKEN"]["valueFrom"] == ref
    assert hub_env["CONFIGPROXY_AUTH_TOKEN"]["valueFrom"] == ref
    assert hub_env["JPY_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "cookie-secret"


@pytest.mark.integration
def test_static_s3_keys_reach_the_hub_from_a_secret(rendered):
    objects = rendered["static-s3"]
    s3 = secret_data(one(objects, "Secret", f"{RELEASE}-s3"))
    assert s3 == {"AWS_ACCESS_KEY_ID": STATIC_KEY_ID, "AWS_SECRET_ACCESS_KEY": STATIC_SECRET}
    env = env_of(hub_container(objects))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": f"{RELEASE}-s3", "key": name}
    hub_values = rendered_hub_values(objects)
    assert hub_values["s3"]["credentials"]["mode"] == "static"
    assert "accessKeyId" not in hub_values["s3"] and "secretAccessKey" not in hub_values["s3"]


@pytest.mark.integration
def test_sts_with_an_existing_secret(rendered):
    objects = rendered["sts"]
    assert not find(objects, "Secret", f"{RELEASE}-s3")
    env = env_of(hub_container(objects))
    ref = env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "codepilot-hub-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    credentials = rendered_hub_values(objects)["s3"]["credentials"]
    assert credentials == {
        "mode": "sts",
        "roleArn": "arn:aws:iam::123456789012:role/codepilot-users",
        "durationSeconds": 7200,
    }
    account = one(objects, "ServiceAccount", f"{RELEASE}-hub")
    assert account["metadata"]["annotations"] == {"example.com/role": "codepilot"}


@pytest.mark.integration
def test_default_hub_has_no_s3_keys(rendered):
    env = env_of(hub_container(rendered["default"]))
    assert "AWS_ACCESS_KEY_ID" not in env  # e.g. IAM roles for service accounts instead


# --- references between objects ----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_selectors_match_labels(rendered, value_set):
    objects = rendered[value_set]
    pod_labels = []
    for owner, _spec, labels in pod_templates(objects):
        selector = owner["spec"]["selector"]
        assert selects(selector, labels), owner["metadata"]["name"]
        # Each workload's selector picks its own pods and no other workload's.
        others = [
            o for o, _, lb in pod_templates(objects) if o is not owner and selects(selector, lb)
        ]
        assert not others, owner["metadata"]["name"]
        pod_labels.append(labels)
    for service in find(objects, "Service"):
        matched = [lb for lb in pod_labels if selects(service["spec"]["selector"], lb)]
        assert len(matched) == 1, service["metadata"]["name"]
        (workload,) = [spec for _, spec, lb in pod_templates(objects) if lb is matched[0]]
        port_names = {p["name"] for c in workload["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]
    for policy in find(objects, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        if selects(selector, USER_POD_LABELS):
            continue  # user pods are made by the hub, with these labels (values.md)
        assert any(selects(selector, lb) for lb in pod_labels), policy["metadata"]["name"]


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_references_resolve(rendered, value_set):
    objects = rendered[value_set]
    values = VALUE_SETS[value_set]
    secrets = {s["metadata"]["name"]: secret_data(s) for s in find(objects, "Secret")}
    external = {
        values.get("s3", {}).get("existingSecret"),
        values.get("hub", {}).get("existingSecret"),
    } - {None}
    claims = {c["metadata"]["name"] for c in find(objects, "PersistentVolumeClaim")}
    accounts = {a["metadata"]["name"] for a in find(objects, "ServiceAccount")}
    for owner, spec, _ in pod_templates(objects):
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in accounts
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        for container in all_containers(spec):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if not ref:
                    continue
                if ref["name"] in external:
                    continue
                assert ref["key"] in secrets[ref["name"]], (owner["metadata"]["name"], ref)
    for binding in find(objects, "RoleBinding"):
        assert find(objects, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        for subject in binding["subjects"]:
            assert subject["name"] in accounts and subject["namespace"] == NAMESPACE
    services = {s["metadata"]["name"]: s for s in find(objects, "Service")}
    for ingress in find(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports


# --- RBAC --------------------------------------------------------------------------------

SITE_PACKAGES = Path(kubernetes_validate.__file__).resolve().parent.parent
PLURALS = {
    "pod": "pods",
    "pod_log": "pods/log",
    "event": "events",
    "secret": "secrets",
    "service": "services",
    "persistent_volume_claim": "persistentvolumeclaims",
    "endpoints": "endpoints",
    "ingress": "ingresses",
    "namespace": "namespaces",
}
VERBS = {
    "create": "create",
    "delete": "delete",
    "read": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
}
# KubeSpawner calls these on every spawn and stop, whatever its settings.
KUBESPAWNER_ALWAYS = {
    ("pods", "create"),
    ("pods", "delete"),
    ("pods", "list"),
    ("pods", "watch"),
    ("events", "list"),
    ("events", "watch"),
}


def api_calls(source: str) -> set[tuple[str, str]]:
    """(resource, verb) pairs a Python source calls through the Kubernetes client."""
    calls = set()
    pattern = r"\b(create|delete|read|list|patch|replace)_namespaced_(\w+?)\b"
    for verb, kind in re.findall(pattern, source):
        assert kind in PLURALS, f"unknown kind {kind}: add it to PLURALS"
        calls.add((PLURALS[kind], VERBS[verb]))
    # KubeSpawner's generic helpers take the kind as an argument.
    for kind in re.findall(r"_ensure_not_exists,\s*\"(\w+)\"", source):
        calls |= {(PLURALS[kind], "delete"), (PLURALS[kind], "get")}
    for kind in re.findall(r"_make_create_resource_request,\s*\"(\w+)\"", source):
        calls.add((PLURALS[kind], "create"))
    # Reflectors list, then watch.
    for kind in re.findall(r"_start_reflector\(\s*kind=\"(\w+)\"", source):
        calls |= {(kind, "list"), (kind, "watch")}
    return calls


def our_hub_sources() -> str:
    paths = [
        *(REPO_ROOT / "codepilot_spawner").rglob("*.py"),
        *(REPO_ROOT / "hub_config").glob("*.py"),
    ]
    return "\n".join(path.read_text() for path in paths)


def spawner_api_calls() -> tuple[set, set]:
    """API calls of KubeSpawner (the spawner, not its ingress proxy) and of our own code."""
    kubespawner = SITE_PACKAGES / "kubespawner"
    theirs = api_calls((kubespawner / "spawner.py").read_text())
    theirs |= api_calls((kubespawner / "reflector.py").read_text())
    ours = api_calls(our_hub_sources())
    return theirs, ours


def kubespawner_setting(source: str, name: str) -> bool | None:
    """True/False if our hub code sets KubeSpawner's `name` (by assignment or @default)."""
    match = re.search(rf"\b{name}\s*=\s*(True|False)\b", source) or re.search(
        rf"@default\(\"{name}\"\)\s*def \w+\(self\):(?:\s*#[^\n]*)*\s*return (True|False)", source
    )
    return None if match is None else match.group(1) == "True"


def needed_grants() -> set[tuple[str, str]]:
    """What the hub's spawner calls with the settings our hub code gives it."""
    theirs, ours = spawner_api_calls()
    source = our_hub_sources()
    needed = set(KUBESPAWNER_ALWAYS) | ours
    if kubespawner_setting(source, "delete_pvc") is not False:  # KubeSpawner's default: on
        needed.add(("persistentvolumeclaims", "delete"))  # delete_forever
    if kubespawner_setting(source, "storage_pvc_ensure"):
        needed |= {("persistentvolumeclaims", "create"), ("persistentvolumeclaims", "get")}
    if kubespawner_setting(source, "services_enabled") or kubespawner_setting(
        source, "internal_ssl"
    ):
        needed |= {("services", "create"), ("services", "delete"), ("services", "get")}
    if kubespawner_setting(source, "internal_ssl"):
        needed |= {("secrets", "create"), ("secrets", "delete"), ("secrets", "get")}
    assert needed <= theirs | ours, needed - (theirs | ours)
    return needed


@pytest.mark.integration
def test_hub_role_grants_exactly_what_the_spawner_calls(rendered):
    grants = role_grants(rendered["default"])
    assert not any("*" in resource or "*" in verb for resource, verb in grants)
    needed = needed_grants()
    assert grants - needed == set(), "granted but never called"
    assert needed - grants == set(), "called but not granted"
    # The release namespace only.
    assert not find(rendered["default"], "ClusterRole")
    assert not find(rendered["default"], "ClusterRoleBinding")


def test_api_call_scanner_reads_the_code():
    theirs, ours = spawner_api_calls()
    assert theirs >= KUBESPAWNER_ALWAYS
    assert ("secrets", "create") in ours  # CodePilotSpawner's per-server Secret
    assert ("secrets", "get") in theirs  # KubeSpawner's _ensure_not_exists("secret", ...)
    assert ("pods", "patch") not in theirs
    assert api_calls("await api.read_namespaced_pod_log(name=n)") == {("pods/log", "get")}
    assert kubespawner_setting("c.KubeSpawner.delete_pvc = False", "delete_pvc") is False
    assert kubespawner_setting("x", "delete_pvc") is None


# --- the hub and its values --------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_hub_values_follow_the_contract(rendered, value_set):
    hub_values = rendered_hub_values(rendered[value_set])
    assert set(hub_values) == set(CONTRACT_KEYS)
    for section, keys in CONTRACT_KEYS.items():
        assert set(hub_values[section]) == keys, section
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    given = VALUE_SETS[value_set]
    assert hub_values["singleuser"]["previewPort"] == defaults["singleuser"]["previewPort"]
    # The effective host: per-user hosts are on wherever the chart knows the hub's host.
    assert hub_values["hub"]["subdomainHost"] == SUBDOMAIN_HOSTS.get(value_set, "")
    assert hub_values["hub"]["db"]["url"] == given.get("hub", {}).get("db", {}).get("url", "")


@pytest.mark.integration
def test_hub_values_carry_groups_and_authenticator(rendered):
    hub_values = rendered_hub_values(rendered["everything"])
    assert hub_values["hub"]["groups"] == {
        "cs101": {"teachers": ["ada"], "students": ["bob", "cy"]}
    }
    assert hub_values["hub"]["authenticator"]["class"] == "generic-oauth"
    assert hub_values["singleuser"]["extraEnv"] == {
        "PIP_INDEX_URL": "https://pypi.example.com/simple"
    }


@pytest.mark.integration
def test_hub_pod_wiring(rendered):
    objects = rendered["default"]
    container = hub_container(objects)
    env = env_of(container)
    assert env["CODEPILOT_PROXY_API_URL"]["value"] == f"http://{RELEASE}-proxy-api:8001"
    assert env["CODEPILOT_HUB_CONNECT_URL"]["value"] == f"http://{RELEASE}-hub:8081"
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["CODEPILOT_VALUES_FILE"]["value"] == "/usr/local/etc/codepilot/values.yaml"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/usr/local/etc/codepilot"] == "config"
    assert mounts["/srv/codepilot"] == "data"
    assert find(objects, "Service", f"{RELEASE}-proxy-api")
    assert find(objects, "Service", f"{RELEASE}-hub")
    assert "CODEPILOT_DB_URL" not in env
    volumes = {
        v["name"]: v
        for v in one(objects, "Deployment", f"{RELEASE}-hub")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-hub-db"


@pytest.mark.integration
def test_external_database(rendered):
    objects = rendered["external-db"]
    env = env_of(hub_container(objects))
    assert env["CODEPILOT_DB_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{RELEASE}-secrets",
        "key": "db-url",
    }
    assert secret_data(one(objects, "Secret", f"{RELEASE}-secrets"))["db-url"] == DB_URL
    deployment = one(objects, "Deployment", f"{RELEASE}-hub")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


@pytest.mark.integration
def test_hub_restarts_when_its_values_change(helm, rendered, values_dir):
    def checksum(objects):
        deployment = one(objects, "Deployment", f"{RELEASE}-hub")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/hub-values"]

    again = render(helm, {}, values_dir)
    assert checksum(again) == checksum(rendered["default"])
    assert checksum(rendered["sts"]) != checksum(rendered["default"])


@pytest.mark.integration
def test_base_url_reaches_probes_and_proxy(rendered):
    objects = rendered["everything"]
    container = hub_container(objects)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ide/hub/health"
    proxy = one(objects, "Deployment", f"{RELEASE}-proxy")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert f"--error-target=http://{RELEASE}-hub:8081/ide/hub/error" in proxy["command"]


# --- proxy and ingress -------------------------------------------------------------------


def proxy_command(objects):
    deployment = one(objects, "Deployment", f"{RELEASE}-proxy")
    return deployment["spec"]["template"]["spec"]["containers"][0]["command"]


@pytest.mark.integration
def test_subdomain_mode_ingress_and_proxy(rendered):
    objects = rendered["subdomain"]
    ingress = one(objects, "Ingress", f"{RELEASE}-proxy")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == ["codepilot.example.com", "*.codepilot.example.com"]
    assert ingress["spec"]["tls"] == [{"secretName": "codepilot-wildcard-tls", "hosts": hosts}]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert "--host-routing" in proxy_command(objects)
    assert "--host-routing" not in proxy_command(rendered["default"])
    public = one(objects, "Service", f"{RELEASE}-proxy-public")
    assert public["spec"]["type"] == "ClusterIP"


@pytest.mark.integration
def test_ingress_with_a_plain_host(rendered):
    ingress = one(rendered["everything"], "Ingress", f"{RELEASE}-proxy")
    # Per-user hosts by default once the host is known.
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [
        "ide.example.com",
        "*.ide.example.com",
    ]
    assert "tls" not in ingress["spec"]


@pytest.mark.integration
def test_ingress_off(rendered):
    objects = rendered["ingress-off"]
    assert not find(objects, "Ingress")
    public = one(objects, "Service", f"{RELEASE}-proxy-public")
    assert public["spec"]["type"] == "NodePort"
    assert public["spec"]["ports"][0]["port"] == 8080


@pytest.mark.integration
def test_image_puller_pulls_the_runner_image(rendered):
    daemonset = one(rendered["everything"], "DaemonSet", f"{RELEASE}-image-puller")
    (init,) = daemonset["spec"]["template"]["spec"]["initContainers"]
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["singleuser"]["image"]
    assert init["image"] == f"{defaults['name']}:{defaults['tag']}"
    assert not find(rendered["default"], "DaemonSet")


# --- NOTES.txt ---------------------------------------------------------------------------


def notes(helm, values, tmp) -> str:
    return install_dry_run(helm, values, tmp)[1]


@pytest.mark.integration
def test_notes_tell_the_admin_where_to_go(helm, values_dir):
    default = notes(helm, {}, values_dir)
    assert f"get service {RELEASE}-proxy-public" in default
    assert "s3.bucket is empty" in default
    assert "hub.subdomainHost" in default
    subdomain = notes(
        helm,
        {**VALUE_SETS["subdomain"], **VALUE_SETS["sts"], "hub": VALUE_SETS["subdomain"]["hub"]},
        values_dir,
    )
    assert "https://codepilot.example.com/" in subdomain
    assert "*.codepilot.example.com" in subdomain
    assert "s3.bucket is empty" not in subdomain


@pytest.mark.integration
def test_notes_ask_to_rename_the_old_value_of_the_starters(helm, values_dir):
    assert "singleuser.templates" not in notes(helm, {}, values_dir)
    objects, old = install_dry_run(helm, {"singleuser": {"templates": ["flask"]}}, values_dir)
    assert "singleuser.templates is the old name of singleuser.starters" in old
    # It reaches the hub's values beside the new name (the hub reads it, test_kube_manifests).
    singleuser = rendered_hub_values(objects)["singleuser"]
    assert singleuser["templates"] == ["flask"]
    assert singleuser["starters"] == ["python", "flask", "node-express", "react-vite"]
