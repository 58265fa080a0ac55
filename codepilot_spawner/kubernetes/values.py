"""The Helm values the Kubernetes hub reads, and the hub settings derived from them.

The chart renders the hub's values into a Secret mounted at ``DEFAULT_VALUES_FILE`` (as
zero-to-jupyterhub does); ``hub_config/jupyterhub_config.py`` reads it with these pure
functions, never from scattered environment variables.
"""

import importlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlparse

import yaml

from codepilot_contracts.defaults import PREVIEW_PORT, S3_PREFIX, S3_REGION

from ..classroom.groups import (
    STUDENTS_GROUP,
    TEACHERS_GROUP,
    USER_NAME,
    make_login_hook,
    one_machine_groups,
    teacher_role,
)
from ..services import culler

DEFAULT_VALUES_FILE = "/usr/local/etc/codepilot/values.yaml"
VALUES_FILE_VARIABLE = "CODEPILOT_VALUES_FILE"

# What an empty `hub.authenticator.class` means: passwords the admin sets in
# `hub.authenticator.config`; with none set nobody can log in, which is safe.
DEFAULT_AUTHENTICATOR = "shared-password"
TEACHER_GROUP_SUFFIX = "-teachers"


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


# The old name of singleuser.starters, still read. values.yaml gives it no default, so
# when it is there a deployment set it, and it wins (NOTES.txt asks to rename it).
OLD_STARTERS_VALUE = "singleuser.templates"


def configured_starters(values: dict) -> list:
    """``singleuser.starters``, or ``singleuser.templates`` (its old name) when set."""
    if get_value(values, OLD_STARTERS_VALUE) is not None:
        return typed_value(values, OLD_STARTERS_VALUE, list, [])
    return typed_value(values, "singleuser.starters", list, ["python"])


def authenticator_class(values: dict) -> type:
    """The class named by ``hub.authenticator.class``: an entry-point name or import path."""
    name = typed_value(values, "hub.authenticator.class", str, "") or DEFAULT_AUTHENTICATOR
    installed = entry_points(group="jupyterhub.authenticators")
    for entry_point in installed:
        if entry_point.name == name:
            return entry_point.load()
    module_name, _, class_name = name.rpartition(".")
    if module_name:
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            pass
    names = ", ".join(sorted(entry_point.name for entry_point in installed))
    raise ValuesError(
        f"hub.authenticator.class {name!r} is not an installed authenticator; "
        f"installed: {names}, or give an import path like package.module.ClassName"
    )


def authenticator_config(values: dict) -> dict:
    return typed_value(values, "hub.authenticator.config", dict, {})


def teacher_group_name(group: str) -> str:
    return group + TEACHER_GROUP_SUFFIX


def classroom_groups_of(values: dict) -> dict[str, dict[str, list[str]]]:
    """``hub.groups``, checked: ``{group: {"teachers": [...], "students": [...]}}``."""
    groups = typed_value(values, "hub.groups", dict, {})
    checked = {}
    for name, members in groups.items():
        if not isinstance(members, dict):
            raise ValuesError(f"hub.groups.{name} must be a mapping with teachers and students")
        unknown = set(members) - {"teachers", "students"}
        if unknown:
            raise ValuesError(f"hub.groups.{name} has unknown keys: {', '.join(sorted(unknown))}")
        checked[name] = {
            role: [str(user) for user in typed_value(members, role, list, [])]
            for role in ("teachers", "students")
        }
    return checked


def hub_teachers(values: dict) -> list[str]:
    """``hub.teachers``, checked: user names as JupyterHub normalizes them (lower case),
    each once. Set, they make the one-machine class: ``teachers`` and everyone else."""
    names = []
    for raw in typed_value(values, "hub.teachers", list, []):
        if not isinstance(raw, str) or not USER_NAME.match(raw.strip()):
            raise ValuesError(f"hub.teachers: {raw!r} is not a user name")
        name = raw.strip().lower()
        if name not in names:
            names.append(name)
    if names:
        # Named classes with these names would share (and mix up) the simple model's groups.
        taken = {TEACHERS_GROUP, STUDENTS_GROUP} & set(classroom_groups_of(values))
        if taken:
            raise ValuesError(
                f"hub.groups.{sorted(taken)[0]}: with hub.teachers set, the groups "
                f"{TEACHERS_GROUP!r} and {STUDENTS_GROUP!r} belong to it; rename the class"
            )
    return names


def classroom_groups(values: dict) -> dict:
    """``c.JupyterHub.load_groups``: each group of students, and its teachers' group;
    with ``hub.teachers``, the groups ``teachers`` and ``students`` of one machine too."""
    load_groups = {}
    teachers = hub_teachers(values)
    if teachers:
        load_groups.update(one_machine_groups(teachers))
    for name, group in classroom_groups_of(values).items():
        load_groups[name] = {"users": group["students"]}
        load_groups[teacher_group_name(name)] = {"users": group["teachers"]}
    return load_groups


def teacher_roles(values: dict) -> list[dict]:
    """Roles that give each group's teachers their students (``classroom.teacher_role``,
    the one-machine hub's too), listed students by name as well as by group."""
    roles = []
    if hub_teachers(values):
        roles.append(teacher_role(STUDENTS_GROUP, TEACHERS_GROUP, extra_scopes=["admin-ui"]))
    roles.extend(
        teacher_role(name, teacher_group_name(name), group["students"], ["admin-ui"])
        for name, group in classroom_groups_of(values).items()
    )
    return roles


def class_login_hook(values: dict):
    """``Authenticator.post_auth_hook`` for ``hub.teachers`` (the one-machine hook), or None
    when it is empty.

    Who logs in and is no listed teacher joins ``students``, except admins and the
    teachers of ``hub.groups`` classes: those keep their groups, so a ``hub.teachers``
    teacher never reaches another teacher's servers.
    """
    teachers = hub_teachers(values)
    if not teachers:
        return None
    left_alone = {str(name) for name in typed_value(values, "hub.adminUsers", list, [])}
    for group in classroom_groups_of(values).values():
        left_alone.update(group["teachers"])
    return make_login_hook(teachers, left_alone - set(teachers))


def classroom_users(values: dict) -> set[str]:
    """Everyone named in the groups: they may log in even when allow_all is off."""
    users = set()
    for group in classroom_groups(values).values():
        users.update(group["users"])
    return users


def culler_service(values: dict, python: str = "python3"):
    """The idle culler the ``culler`` values ask for (a ``HubService``); None if off."""
    if not typed_value(values, "culler.enabled", bool, True):
        return None
    timeout = typed_value(values, "culler.timeout", int, 3600)
    every = typed_value(values, "culler.every", int, 600)
    if timeout <= 0 or every <= 0:
        raise ValuesError("culler.timeout and culler.every must be positive numbers of seconds")
    return culler.hub_service(timeout, every, python)


def release_name(environ=os.environ) -> str:
    """The Helm release: ``CODEPILOT_RELEASE``, else the host of ``<release>-hub:8081``."""
    if environ.get("CODEPILOT_RELEASE"):
        return environ["CODEPILOT_RELEASE"]
    host = urlparse(environ.get("CODEPILOT_HUB_CONNECT_URL", "")).hostname or ""
    return host.removesuffix("-hub") if host.endswith("-hub") else ""


def s3_settings(values: dict):
    """The ``s3`` values as ``S3Settings`` (which checks them)."""
    from ..s3settings import S3Settings

    try:
        return S3Settings(
            bucket=typed_value(values, "s3.bucket", str, ""),
            prefix=typed_value(values, "s3.prefix", str, S3_PREFIX),
            endpoint_url=typed_value(values, "s3.endpointUrl", str, ""),
            region=typed_value(values, "s3.region", str, S3_REGION),
            mode=typed_value(values, "s3.credentials.mode", str, "sts"),
            role_arn=typed_value(values, "s3.credentials.roleArn", str, ""),
            duration_seconds=typed_value(values, "s3.credentials.durationSeconds", int, 3600),
        )
    except ValueError as error:
        raise ValuesError(f"s3: {error}") from None


# --- database, roles, previews ---------------------------------------------------------------


def database_url(url: str) -> str:
    """The SQLAlchemy URL for ``hub.db.url``: PostgreSQL through psycopg 3, which ships.

    SQLAlchemy reads a plain ``postgresql://`` as psycopg2, which neither the ``hub``
    extra nor the hub image installs; ``postgresql+<driver>://`` is kept as given.
    """
    scheme, separator, rest = url.partition("://")
    if separator and scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


_DNS_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]*[a-z0-9])?"
)


@dataclass(frozen=True)
class PreviewSettings:
    """The ``preview`` values: previews on ``<label>.<domain>``, through the gateway."""

    domain: str
    scheme: str
    hub_url: str
    relay_port: int
    share_levels: tuple[str, ...]
    gateway_url: str  # the gateway's Service, where the hub, proxy and servers reach it
    public_url: str  # the gateway's public URL on the hub's origin, where viewers sign in


def preview_settings(values: dict) -> PreviewSettings | None:
    """The ``preview`` section checked, or None when ``preview.domain`` is empty (off)."""
    from ..services.preview.access import SHARE_LEVELS

    domain = typed_value(values, "preview.domain", str, "").lower().rstrip(".")
    if not domain:
        return None
    if not _DNS_NAME.fullmatch(domain):
        raise ValuesError(f"preview.domain {domain!r} is not a DNS name like preview.example.net")
    hub_url = typed_value(values, "preview.hubUrl", str, "")
    if not re.fullmatch(r"https?://[^/\s]+/?", hub_url):
        raise ValuesError(
            "preview.hubUrl must be the hub's public URL (https://codepilot.example.com); "
            "the chart derives it from ingress.host"
        )
    levels = tuple(typed_value(values, "preview.shareLevels", list, list(SHARE_LEVELS)))
    if "owner" not in levels or set(levels) - set(SHARE_LEVELS):
        raise ValuesError(f"preview.shareLevels must include 'owner' and be among {SHARE_LEVELS}")
    relay_port = typed_value(values, "preview.relayPort", int, 9797)
    preview_port = typed_value(values, "singleuser.previewPort", int, PREVIEW_PORT)
    if not 1024 <= relay_port <= 65535 or relay_port in (preview_port, 8888):
        raise ValuesError(
            f"preview.relayPort {relay_port} must be 1024-65535 and not the app's port "
            "(singleuser.previewPort) nor the server's (8888)"
        )
    hub_host = urlparse(hub_url).hostname or ""
    if hub_host == domain or hub_host.endswith("." + domain):
        raise ValuesError(
            f"preview.domain {domain!r} holds the hub's host {hub_host!r}: every preview "
            "could set cookies for the hub. Use a domain of its own (best: another "
            "registrable domain)"
        )
    scheme = typed_value(values, "preview.scheme", str, "https")
    if scheme not in ("http", "https"):
        raise ValuesError(f"preview.scheme must be http or https, not {scheme!r}")
    gateway_url = typed_value(values, "preview.gatewayUrl", str, "")
    public_url = typed_value(values, "preview.publicUrl", str, "")
    if not gateway_url.startswith("http://") or not public_url.startswith(("http:", "https:")):
        raise ValuesError(
            "preview.gatewayUrl and preview.publicUrl must be URLs: the chart sets them "
            "(the gateway's Service, and its public URL)"
        )
    return PreviewSettings(
        domain, scheme, hub_url.rstrip("/"), relay_port, levels, gateway_url, public_url
    )
