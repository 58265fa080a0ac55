"""Look-ups over Kubernetes objects as dicts: rendered by helm or built by the spawner."""

import base64

import yaml

from .helm import RELEASE

# The labels every user pod carries (the chart's policies select on them).
USER_POD_LABELS = {
    "app.kubernetes.io/name": "codepilot",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "singleuser-server",
}


def find(objects, kind, name=None) -> list[dict]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects, kind, name) -> dict:
    (found,) = find(objects, kind, name)
    return found


def pod_templates(objects):
    """(owner, pod spec, pod labels) of every workload."""
    for obj in objects:
        if obj["kind"] in {"Deployment", "DaemonSet", "StatefulSet", "Job"}:
            template = obj["spec"]["template"]
            yield obj, template["spec"], template["metadata"].get("labels", {})


def all_containers(pod_spec: dict) -> list[dict]:
    """Init containers, then containers, of a pod spec (a pod's or a template's ``spec``)."""
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def env_of(container: dict) -> dict[str, dict]:
    """A container's environment by name: each entry as written (``value`` or ``valueFrom``)."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def secret_data(secret: dict) -> dict[str, str]:
    """A Secret's ``data`` decoded, with its ``stringData`` (which the API server merges)."""
    data = dict(secret.get("stringData", {}))
    data.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    return data


def selects(selector: dict, labels: dict) -> bool:
    """Whether a matchLabels selector (or a LabelSelector with only matchLabels) picks labels."""
    match = selector.get("matchLabels", selector)
    assert "matchExpressions" not in selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def hub_container(objects) -> dict:
    deployment = one(objects, "Deployment", f"{RELEASE}-hub")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def rendered_hub_values(objects) -> dict:
    """The values the chart hands the hub (its hub-config Secret's values.yaml)."""
    config = one(objects, "Secret", f"{RELEASE}-hub-config")
    return yaml.safe_load(secret_data(config)["values.yaml"])


def role_grants(objects) -> set[tuple[str, str]]:
    """(resource, verb) pairs the hub's Role grants, in the release namespace only."""
    role = one(objects, "Role", f"{RELEASE}-hub")
    grants = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], rule
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                grants.add((resource, verb))
    return grants
