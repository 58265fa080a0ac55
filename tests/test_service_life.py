"""A killed hub leaves none of its services behind, and its restart starts them again.

JupyterHub ends its managed services when it stops, but a hub killed outright cannot;
ours (credential broker, preview gateway, class page, idle culler) then end on their own, so a
restarted hub's services can listen on the same ports.
"""

import os
import signal

import pytest
import requests

from .support.hubtools import login, start_hub, wait_until
from .support.s3server import s3_server_fixture

pytestmark = pytest.mark.integration

BUCKET = "service-life"
SERVICE_MODULES = (
    "codepilot_spawner.services.broker",
    "codepilot_spawner.services.preview",
    "codepilot_spawner.services.classpage",
    "codepilot_spawner.services.culler",
)

s3 = s3_server_fixture(buckets=(BUCKET,))


def children_by_module(parent: int) -> dict[str, int]:
    """The pids of ``parent``'s children that run one of our service modules."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        for module in SERVICE_MODULES:
            if ppid == parent and module.encode() in argv:
                found[module] = int(entry)
    return found


def all_services(hub_pid: int) -> dict[str, int] | None:
    found = children_by_module(hub_pid)
    return found if len(found) == len(SERVICE_MODULES) else None


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def hub_env(s3):
    return {
        **s3.env,
        "CODEPILOT_STORAGE": "sync",
        "CODEPILOT_S3_BUCKET": BUCKET,
        "CODEPILOT_S3_ROLE_ARN": "arn:aws:iam::123456789012:role/codepilot-users",
        "CODEPILOT_TEACHERS": "tess",
        "CODEPILOT_TEACHER_PASSWORD": "teacher-password",
        # Every other module's hub serves users on hosts of their own; this one does not.
        "CODEPILOT_SUBDOMAINS": "false",
    }


def test_a_killed_hub_leaves_no_service_and_its_restart_serves_again(hub_env):
    hub = start_hub(env=hub_env)
    again = None
    try:
        services = wait_until(
            lambda: all_services(hub.process.pid),
            30,
            0.2,
            "the hub's services",
        )
        hub.process.send_signal(signal.SIGKILL)
        hub.process.wait(30)
        wait_until(
            lambda: not any(running(pid) for pid in services.values()),
            30,
            0.2,
            "the services to end after their hub",
        )

        again = start_hub(data_dir=hub.data_dir, env=hub.env)
        restarted = wait_until(
            lambda: all_services(again.process.pid),
            30,
            0.2,
            "the restarted hub's services",
        )
        assert set(restarted.values()).isdisjoint(services.values())
        # They listen where the old ones did: the broker answers through the hub...
        broker = requests.get(
            f"{again.service_url('codepilot-credentials')}api/credentials", timeout=30
        )
        assert broker.status_code in (401, 403), broker.status_code
        # ... and the preview gateway on its own port.
        gateway = requests.get(f"http://127.0.0.1:{again.preview_port}/", timeout=30)
        assert gateway.status_code in (400, 404), gateway.status_code
        # IDEs on the hub's origin: the banner and the class page tell teachers the cost.
        assert "IDEs: on the hub's origin (CODEPILOT_SUBDOMAINS=false)" in again.log()
        page = login(again, "tess", "teacher-password").get(again.service_url("codepilot"))
        assert page.status_code == 200 and 'id="exposed"' in page.text
    finally:
        (again or hub).stop()
