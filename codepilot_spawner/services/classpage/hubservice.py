"""How a hub runs the class page: its service entry and roles, and the teachers' role."""

import sys
from pathlib import Path

from ...classroom.groups import STUDENTS_GROUP, TEACHERS_GROUP, teacher_role
from ..declaration import HubService

SERVICE_NAME = "codepilot"
# JupyterHub.template_paths: the hub's pages with the class page in their navigation.
HUB_TEMPLATES = Path(__file__).parent / "hub_templates"


def teachers_land_on_class_page(handler) -> str:
    """``JupyterHub.default_url``: where a teacher lands after login (and at ``/``): the
    class page; everyone else where JupyterHub sends them (an empty answer)."""
    user = handler.current_user
    if user is None or not any(group.name == TEACHERS_GROUP for group in user.groups):
        return ""
    service = handler.services.get(SERVICE_NAME)
    return service_link(service) if service is not None and service.url else ""


def service_link(service) -> str:
    """A hub service's URL: on its own host with subdomains, port included (JupyterHub's
    ``href`` leaves the port out), else its path."""
    return service.host + service.prefix if service.host else service.href


def service_scopes(student_group: str) -> list[str]:
    """What the page reads at the hub: the students and their servers, a token per
    student that opens only their servers (sync state, share level), and the group's
    properties (the default starter). Nothing outside the students' group."""
    where = f"!group={student_group}"
    return [
        f"list:users{where}",
        f"read:users{where}",
        f"read:servers{where}",
        f"tokens{where}",
        f"groups{where}",
    ]


def hub_service(port: int, args: list[str], student_group=STUDENTS_GROUP) -> HubService:
    """The page at ``/services/codepilot/`` on ``port``, with its role."""
    entry = {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "codepilot_spawner.services.classpage", *args],
        "oauth_no_confirm": True,
        # A viewer's token starts and stops what the viewer may, no more, and runs and
        # stops the apps in the servers the viewer may open.
        "oauth_client_allowed_scopes": ["servers", "read:servers", "access:servers"],
    }
    role = {
        "name": SERVICE_NAME,
        "description": "The class page reads the students and their servers",
        "scopes": service_scopes(student_group),
        "services": [SERVICE_NAME],
    }
    return HubService(entry, (role,))


def classroom_roles(student_group=STUDENTS_GROUP, teacher_group=TEACHERS_GROUP) -> list[dict]:
    """The teachers' role on one machine: their students, and the class page."""
    return [
        teacher_role(
            student_group,
            teacher_group,
            extra_scopes=[f"access:services!service={SERVICE_NAME}"],
        )
    ]
