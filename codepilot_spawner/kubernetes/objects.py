"""Kubernetes objects and pieces of them for Code Pilot's user pods, built by pure functions.

Plain data in, ``kubernetes_asyncio`` models or dicts out, as in KubeSpawner's objects.py;
``CodePilotSpawner`` composes them and the tests compare them without a cluster. A
function given a pod returns a changed copy and leaves the pod it was given as it was.
"""

import base64
import copy
import re

from kubernetes_asyncio.client.models import (
    V1Container,
    V1ContainerPort,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1Secret,
)

from codepilot_contracts.starters import STARTER_TITLES

from ..upstream_api.kubespawner import SERVER_CONTAINER

RESTORE_CONTAINER = "restore-workspace"
RELAY_CONTAINER = "preview-relay"
WORKSPACE_VOLUME = "workspace"
PREVIEW_PORT_NAME = "preview"
RELAY_PORT_NAME = "preview-relay"
START_ANNOTATION = "codepilot.io/start-id"
# What a stopping server needs besides pushing: the server's own shutdown and the
# kubelet's signal delivery. The rest of the grace period is the sync's to flush in.
SHUTDOWN_MARGIN_SECONDS = 10
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
# KubeSpawner marks its pods with both; its pod reflector selects on "component".
COMPONENT_LABELS = (COMPONENT_LABEL, "component")

_SLUG = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CPU = (int, float)
_MEMORY = re.compile(r"\d+(\.\d+)?[KMGT]?")  # what KubeSpawner's mem_limit accepts


# --- security -----------------------------------------------------------------------------


def pod_security_context(uid: int) -> dict:
    """Pod-level: everything runs as ``uid``, never root, under the runtime's seccomp filter.

    ``fsGroup`` makes the workspace emptyDir writable by that user.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int) -> dict:
    """Container-level: no setuid escalation and no Linux capabilities at all."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# --- labels, volumes, environment ---------------------------------------------------------


def sync_flush_timeout(grace_period: int) -> float:
    """Seconds a stopping server may push pending changes, from the pod's grace period.

    The grace period less ``SHUTDOWN_MARGIN_SECONDS``, and never more than half of a short
    one: the kubelet kills the pod at the end of the grace period, and whatever has not
    reached S3 by then is lost with the emptyDir.
    """
    if grace_period <= 0:
        return 0.0
    return float(max(grace_period - SHUTDOWN_MARGIN_SECONDS, grace_period / 2))


def common_labels(release: str) -> dict:
    """Labels on every object of a user server; the chart's NetworkPolicy selects on them.

    KubeSpawner adds ``app.kubernetes.io/component: singleuser-server`` to the pod.
    """
    labels = {NAME_LABEL: "codepilot", "app.kubernetes.io/managed-by": "kubespawner"}
    if release:
        labels[INSTANCE_LABEL] = release
    return labels


def pod_name_template(release: str) -> str:
    """KubeSpawner's ``pod_name_template`` with the release in it: two releases in one
    namespace never share a pod name (nor, through it, a server's Secret)."""
    return f"jupyter-{release}-{{user_server}}" if release else "jupyter-{user_server}"


def workspace_volume(size_limit: str) -> dict:
    """An emptyDir for the workspace: S3 holds the durable copy, the pod only a working one."""
    return {"name": WORKSPACE_VOLUME, "emptyDir": {"sizeLimit": size_limit}}


def workspace_mount(mount_path: str) -> dict:
    return {"name": WORKSPACE_VOLUME, "mountPath": mount_path}


def secret_env(secret_name: str, keys) -> dict:
    """KubeSpawner env entries that read each key from the server's Secret."""
    return {
        key: {"valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
        for key in sorted(keys)
    }


def split_secret_env(env: dict, secret_keys) -> tuple[dict, dict]:
    """(env without secret values, the secret values): secrets go to a Secret, not the spec."""
    public = {name: value for name, value in env.items() if name not in secret_keys}
    secret = {
        name: value for name, value in env.items() if name in secret_keys and value is not None
    }
    return public, secret


# --- the pod --------------------------------------------------------------------------------


def make_restore_container(server: V1Container, command: list[str], mount_path: str) -> V1Container:
    """The init container that restores the workspace from S3 before the server starts.

    It runs the server's image with the server's environment, resources and security
    context, so it restores exactly what the server would sync, as the same user.
    """
    return V1Container(
        name=RESTORE_CONTAINER,
        image=server.image,
        image_pull_policy=server.image_pull_policy,
        command=list(command),
        working_dir=mount_path,
        env=list(server.env or []),
        resources=server.resources,
        security_context=server.security_context,
        volume_mounts=list(server.volume_mounts or []),
    )


def _with_spec(pod: V1Pod, **changes) -> V1Pod:
    """A copy of ``pod`` whose spec has ``changes``; the rest is shared, never changed."""
    spec = copy.copy(pod.spec)
    for name, value in changes.items():
        setattr(spec, name, value)
    changed = copy.copy(pod)
    changed.spec = spec
    return changed


def add_restore_and_preview(
    pod: V1Pod, restore_command: list[str], mount_path: str, preview_port: int
) -> V1Pod:
    """The pod KubeSpawner made, with the restore init container first and the preview port.

    The preview port is declared so the chart's policies and ``kubectl`` can name it;
    the proxy reaches previews through the server, never directly.
    """
    server = server_container(pod)
    restore = make_restore_container(server, restore_command, mount_path)
    containers = list(pod.spec.containers)
    if not any(port.container_port == preview_port for port in server.ports or []):
        server = copy.copy(server)
        server.ports = [
            *(server.ports or []),
            V1ContainerPort(name=PREVIEW_PORT_NAME, container_port=preview_port),
        ]
        containers[[c.name for c in containers].index(SERVER_CONTAINER)] = server
    return _with_spec(
        pod,
        init_containers=[restore, *(pod.spec.init_containers or [])],
        containers=containers,
    )


def make_relay_container(
    server: V1Container,
    command: list[str],
    relay_port: int,
    app_port: int,
    resources: dict,
    image: str = "",
    image_pull_policy: str = "",
    start_id: str = "",
    reserved_ports: tuple[int, ...] = (),
) -> V1Container:
    """The preview relay sidecar: ``<pod IP>:<relay_port>`` to ``127.0.0.1:<app_port>``
    (or another port the pod listens on, but ``reserved_ports``: the server's own).

    ``image`` (the hub's, so the relay is always the version the preview gateway
    speaks to), else the server's; the server's security context; no environment (it
    needs no token and no keys) and no volume. With ``start_id`` the relay takes only
    connections that name that start (``codepilot_contracts.relay``).
    """
    if relay_port == app_port:
        raise ValueError(f"the preview relay port {relay_port} is the app's own port")
    return V1Container(
        name=RELAY_CONTAINER,
        image=image or server.image,
        image_pull_policy=image_pull_policy or server.image_pull_policy,
        command=[
            *command,
            "--listen-port",
            str(relay_port),
            "--target-port",
            str(app_port),
            *(["--start-id", start_id] if start_id else []),
            *(arg for port in reserved_ports for arg in ("--reserved-port", str(port))),
        ],
        ports=[V1ContainerPort(name=RELAY_PORT_NAME, container_port=relay_port)],
        resources=resources,
        security_context=server.security_context,
    )


def add_preview_relay(pod: V1Pod, **relay_settings) -> V1Pod:
    """The pod with its preview relay sidecar (``make_relay_container`` with
    ``relay_settings``), after the server container."""
    relay = make_relay_container(server_container(pod), **relay_settings)
    return _with_spec(pod, containers=[*pod.spec.containers, relay])


def annotate_start(pod: V1Pod, start_id: str) -> V1Pod:
    """Mark the pod with its start, as its Secret is: the two of one start go together."""
    metadata = copy.copy(pod.metadata)
    metadata.annotations = {**(pod.metadata.annotations or {}), START_ANNOTATION: start_id}
    annotated = copy.copy(pod)
    annotated.metadata = metadata
    return annotated


def server_container(pod: V1Pod) -> V1Container:
    for container in pod.spec.containers:
        if container.name == SERVER_CONTAINER:
            return container
    raise ValueError(f"pod {pod.metadata.name} has no {SERVER_CONTAINER!r} container")


# --- the per-server Secret ------------------------------------------------------------------


def secret_labels(pod_labels: dict) -> dict:
    """The labels of a server's Secret: its pod's (user, server, release), not a component."""
    return {name: value for name, value in pod_labels.items() if name not in COMPONENT_LABELS}


def owner_reference_patch(owner_reference: V1OwnerReference) -> dict:
    """A merge patch that gives an existing Secret its owner.

    ``blockOwnerDeletion`` is false: true needs ``update`` on ``pods/finalizers`` where
    the API server enforces owner references (OpenShift), and nothing waits on it here.
    """
    return {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": owner_reference.api_version,
                    "kind": owner_reference.kind,
                    "name": owner_reference.name,
                    "uid": owner_reference.uid,
                    "blockOwnerDeletion": False,
                    "controller": owner_reference.controller,
                }
            ]
        }
    }


def make_server_secret(
    name: str,
    values: dict,
    owner_reference: V1OwnerReference | None,
    labels: dict,
    start_id: str = "",
) -> V1Secret:
    """The Secret with a server's S3 credentials and API token, read by its containers."""
    return V1Secret(
        api_version="v1",
        kind="Secret",
        type="Opaque",
        metadata=V1ObjectMeta(
            name=name,
            labels=dict(labels),
            annotations={START_ANNOTATION: start_id} if start_id else None,
            owner_references=[owner_reference] if owner_reference else None,
        ),
        data={
            key: base64.b64encode(str(value).encode()).decode()
            for key, value in sorted(values.items())
        },
    )


# --- profiles -------------------------------------------------------------------------------


def size_overrides(size: dict, defaults: dict | None = None) -> dict:
    """KubeSpawner traits for one size of the values (``cpu``/``memory`` guarantee, limit)."""
    defaults = defaults or {}
    name = size.get("name", "?")
    overrides = {}
    for trait, group, bound, valid in (
        ("cpu_guarantee", "cpu", "guarantee", lambda v: isinstance(v, _CPU)),
        ("cpu_limit", "cpu", "limit", lambda v: isinstance(v, _CPU)),
        ("mem_guarantee", "memory", "guarantee", lambda v: _MEMORY.fullmatch(str(v))),
        ("mem_limit", "memory", "limit", lambda v: _MEMORY.fullmatch(str(v))),
    ):
        value = (size.get(group) or {}).get(bound, (defaults.get(group) or {}).get(bound))
        if value is None:
            continue
        if isinstance(value, bool) or not valid(value):
            raise ValueError(
                f"size {name!r}: {group}.{bound} = {value!r} is not valid "
                f"({'a number of CPUs' if group == 'cpu' else 'bytes like 512M or 2G'})"
            )
        overrides[trait] = str(value) if group == "memory" else value
    return overrides


def make_profile_list(starters: list[str], sizes: list[dict], defaults: dict | None = None):
    """KubeSpawner's ``profile_list``: one profile per starter, each with a size.

    Every (starter, size) pair can be started; a REST spawn names them as
    ``{"profile": "<starter>", "size": "<size name>"}``. The first starter and the
    size marked ``default`` (else the first) are preselected.
    """
    if not starters:
        raise ValueError("at least one starter is needed")
    if not sizes:
        raise ValueError("at least one size is needed")
    size_names = [size.get("name") for size in sizes]
    for name in [*starters, *size_names]:
        if not isinstance(name, str) or not _SLUG.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a valid starter or size name "
                "(lowercase letters, digits and dashes)"
            )
    for names, what in ((starters, "starter"), (size_names, "size")):
        if len(set(names)) != len(names):
            raise ValueError(f"a {what} name is listed twice: {names}")
    if sum(bool(size.get("default")) for size in sizes) > 1:
        raise ValueError("only one size can be the default")

    default_size = next((s["name"] for s in sizes if s.get("default")), sizes[0]["name"])
    choices = {
        size["name"]: {
            "display_name": size.get("displayName") or size["name"],
            "default": size["name"] == default_size,
            "kubespawner_override": size_overrides(size, defaults),
        }
        for size in sizes
    }
    return [
        {
            "display_name": STARTER_TITLES.get(starter, starter),
            "slug": starter,
            "description": f"Starts from the {starter} starter on a first start",
            "default": index == 0,
            "kubespawner_override": {"starter": starter},
            "profile_options": {"size": {"display_name": "Size", "choices": choices}},
        }
        for index, starter in enumerate(starters)
    ]
