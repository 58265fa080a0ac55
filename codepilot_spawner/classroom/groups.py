"""Classes: teachers and students as hub groups, and what teachers may do.

One implementation for both hubs. On one machine there is one class: the group
``teachers`` (``CODEPILOT_TEACHERS``) and the group ``students`` (everyone else who logs
in). On Kubernetes every ``hub.groups.<name>`` is a class whose teachers are the group
``<name>-teachers``. Either way a teacher's role reaches the students' group only.
"""

import re

from ..upstream_api.jupyterhub import group_names, group_properties, hub_user, place_in_group

TEACHERS_GROUP = "teachers"
STUDENTS_GROUP = "students"
CLASS_GROUPS = (TEACHERS_GROUP, STUDENTS_GROUP)
# Group property (JupyterHub 5+) holding the starter a class's new workspaces default to.
DEFAULT_STARTER_PROPERTY = "codepilot_default_starter"

# What teachers may do with their students: list and read them (the admin panel shows
# just them), start and stop their servers, open their IDE, terminals and preview.
TEACHER_SCOPES = ("list:users", "read:users", "read:servers", "servers", "access:servers")

USER_NAME = re.compile(r"^[^\s/,]+$")


class ClassroomError(ValueError):
    """A list of teachers the hub cannot use."""


def parse_names(raw: str, setting: str = "CODEPILOT_TEACHERS") -> list[str]:
    """``"ana, ben"`` -> ``["ana", "ben"]``: user names as JupyterHub normalizes them."""
    names = []
    for part in (raw or "").split(","):
        name = part.strip().lower()
        if not name:
            continue
        if not USER_NAME.match(name):
            raise ClassroomError(f"{setting}: {part.strip()!r} is not a user name")
        if name not in names:
            names.append(name)
    return names


def teacher_role(
    student_group: str,
    teacher_group: str,
    listed_students=(),
    extra_scopes=(),
) -> dict:
    """The role of ``teacher_group``: ``TEACHER_SCOPES`` on ``student_group`` only.

    Each scope is granted with ``!group=<students>``, which covers students who join
    later, and with ``!user=<student>`` for students known now: a user server checking
    an API token resolves user filters but not group ones (the hub resolves both when a
    browser signs in to the server). ``extra_scopes`` are where teachers watch their class:
    the class page on one machine, the admin panel (``admin-ui``, which lists what
    ``list:users`` allows: the students) on Kubernetes.
    """
    filters = [f"group={student_group}", *(f"user={name}" for name in listed_students)]
    return {
        "name": teacher_group,
        "description": f"Teachers of {student_group}: watch, start, stop and open their servers",
        "scopes": [
            *(f"{scope}!{where}" for scope in TEACHER_SCOPES for where in filters),
            *extra_scopes,
        ],
        "groups": [teacher_group],
    }


def one_machine_groups(teachers: list[str]) -> dict:
    """``c.JupyterHub.load_groups``: the teachers, and the (filled at login) students.

    No ``properties`` here: load_groups would overwrite, at every start, the default
    starter a teacher set.
    """
    return {TEACHERS_GROUP: {"users": list(teachers)}, STUDENTS_GROUP: {"users": []}}


def class_group_for(name: str, teachers, admins, current_groups) -> str | None:
    """The class group a user who logs in joins, or None to leave them as they are.

    Listed teachers join ``teachers``; admins join nothing; anyone in neither class
    group joins ``students``. Someone the admin moved between groups stays moved.
    """
    if name in teachers:
        return TEACHERS_GROUP
    if name in admins or {TEACHERS_GROUP, STUDENTS_GROUP} & set(current_groups):
        return None
    return STUDENTS_GROUP


def join_class_group(user, teachers, admins) -> str | None:
    """Put ``user`` (a hub ``User`` or its database row) in their class group
    (``class_group_for``); the group, or None when they stay as they are."""
    target = class_group_for(user.name, teachers, admins, group_names(user))
    # In one class group only: a listed teacher is no student.
    if target is None or not place_in_group(user, target, out_of=CLASS_GROUPS):
        return None
    return target


def make_login_hook(teachers, admins):
    """``Authenticator.post_auth_hook``: puts whoever logs in in their class group.

    ``Authenticator.manage_groups`` would do it too, but would also take group
    membership out of the admin panel's hands.
    """
    teachers, admins = set(teachers), set(admins)

    def join_at_login(authenticator, handler, authentication):
        if not authentication:
            return authentication
        name = authentication["name"]
        user = hub_user(handler, name)  # created here at first login
        target = join_class_group(user, teachers, admins)
        if target is not None:
            authenticator.log.info("%s is in the group %s", name, target)
        return authentication

    return join_at_login


def default_starter(user) -> str:
    """The default starter of the first group of ``user`` (a hub ``User``) that sets one."""
    for properties in group_properties(user):
        value = properties.get(DEFAULT_STARTER_PROPERTY)
        if isinstance(value, str) and value:
            return value
    return ""
