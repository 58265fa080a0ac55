"""The Helm values the Kubernetes hub reads, and the hub settings derived from them.

The chart renders the hub's values into a Secret mounted at ``DEFAULT_VALUES_FILE`` (as
zero-to-jupyterhub does); ``hub_config/jupyterhub_config.py`` reads it with these pure
functions, never from scattered environment variables.
"""

import os
from pathlib import Path

import yaml

DEFAULT_VALUES_FILE = "/usr/local/etc/codepilot/values.yaml"
VALUES_FILE_VARIABLE = "CODEPILOT_VALUES_FILE"

# What an empty `hub.authenticator.class` means: passwords the admin sets in
# `hub.authenticator.config`; with none set nobody can log in, which is safe.
DEFAULT_AUTHENTICATOR = "shared-password"
CULLER_SERVICE = "idle-culler"
TEACHER_GROUP_SUFFIX = "-teachers"

# What teachers may do with the servers of the students of their group.
TEACHER_SCOPES = ("access:servers", "read:servers", "read:users", "list:users")


class ValuesError(ValueError):
    """The values file is missing, unreadable or has a value of the wrong shape."""


def values_file_path(environ=os.environ) -> Path:
    return Path(environ.get(VALUES_FILE_VARIABLE) or DEFAULT_VALUES_FILE)


def load_values(path: Path) -> dict:
    """The mapping in the YAML file at ``path``; an empty file is ``{}``."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ValuesError(
            f"cannot read the values file {path}: {error.strerror}. The chart mounts it "
            f"there; outside the chart, point {VALUES_FILE_VARIABLE} at one."
        ) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValuesError(f"the values file {path} is not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValuesError(
            f"the values file {path} must hold a mapping, not {type(values).__name__}"
        )
    return values


_MISSING = object()


def get_value(values: dict, dotted_key: str, default=None):
    """``get_value(values, "singleuser.previewPort", 3000)``; ``default`` if any level is absent.

    A value explicitly set to null counts as absent, as in Helm.
    """
    node = values
    for part in dotted_key.split("."):
        if not isinstance(node, dict):
            raise ValuesError(f"{dotted_key}: expected a mapping above {part!r}, found {node!r}")
        node = node.get(part, _MISSING)
        if node is _MISSING or node is None:
            return default
    return node


def typed_value(values: dict, dotted_key: str, kind: type | tuple, default):
    """``get_value`` that names the key when the value has the wrong type."""
    value = get_value(values, dotted_key, default)
    # YAML's booleans are ints to Python; a number where a bool is wanted is a mistake.
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ValuesError(f"{dotted_key} must be a number, not {value!r}")
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValuesError(f"{dotted_key} must be {names}, not {value!r}")
    return value


# --- hub settings built from values ------------------------------------------------------


def authenticator_class(values: dict) -> str:
    return typed_value(values, "hub.authenticator.class", str, "") or DEFAULT_AUTHENTICATOR


def teacher_group_name(group: str) -> str:
    return group + TEACHER_GROUP_SUFFIX


def classroom_groups(values: dict) -> dict:
    """``c.JupyterHub.load_groups``: each group of students, and its teachers' group."""
    groups = typed_value(values, "hub.groups", dict, {})
    load_groups = {}
    for name, members in groups.items():
        if not isinstance(members, dict):
            raise ValuesError(f"hub.groups.{name} must be a mapping with teachers and students")
        unknown = set(members) - {"teachers", "students"}
        if unknown:
            raise ValuesError(f"hub.groups.{name} has unknown keys: {', '.join(sorted(unknown))}")
        students = typed_value(members, "students", list, [])
        teachers = typed_value(members, "teachers", list, [])
        load_groups[name] = {"users": [str(user) for user in students]}
        load_groups[teacher_group_name(name)] = {"users": [str(user) for user in teachers]}
    return load_groups


def teacher_roles(values: dict) -> list[dict]:
    """Roles that give each group's teachers access to the servers of its students.

    ``access:servers!group=<students>`` lets a teacher open a student's JupyterLab,
    terminals and preview; the read and list scopes let the admin panel show them.
    """
    roles = []
    for name in typed_value(values, "hub.groups", dict, {}):
        teachers = teacher_group_name(name)
        roles.append(
            {
                "name": teachers,
                "description": f"Teachers of {name}: open and watch its students' servers",
                "scopes": [*(f"{scope}!group={name}" for scope in TEACHER_SCOPES), "admin-ui"],
                "groups": [teachers],
            }
        )
    return roles


def classroom_users(values: dict) -> set[str]:
    """Everyone named in the groups: they may log in even when allow_all is off."""
    users = set()
    for group in classroom_groups(values).values():
        users.update(group["users"])
    return users


def culler_service(values: dict, python: str = "python3") -> tuple[dict, dict] | None:
    """jupyterhub-idle-culler as a hub-managed service, and the role it needs; None if off."""
    if not typed_value(values, "culler.enabled", bool, True):
        return None
    timeout = typed_value(values, "culler.timeout", int, 3600)
    every = typed_value(values, "culler.every", int, 600)
    if timeout <= 0 or every <= 0:
        raise ValuesError("culler.timeout and culler.every must be positive numbers of seconds")
    service = {
        "name": CULLER_SERVICE,
        "command": [
            python,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={timeout}",
            f"--cull-every={every}",
        ],
    }
    role = {
        "name": CULLER_SERVICE,
        "description": "Stop servers nobody used for culler.timeout seconds",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": [CULLER_SERVICE],
    }
    return service, role


def size_resources(size: dict, defaults: dict) -> dict:
    """KubeSpawner traits for a size: its cpu/memory, falling back to singleuser's."""
    resources = {}
    for trait, key in (
        ("cpu_guarantee", "cpu.guarantee"),
        ("cpu_limit", "cpu.limit"),
        ("mem_guarantee", "memory.guarantee"),
        ("mem_limit", "memory.limit"),
    ):
        value = get_value(size, key, get_value(defaults, key))
        if value is not None:
            kind = (int, float) if trait.startswith("cpu") else (str, int)
            resources[trait] = typed_value({"v": value}, "v", kind, None)
    return resources
