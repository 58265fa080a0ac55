"""`make up` by a user who is not root works as the README says: servers run as the hub's
user, the banner and the hub's log say users are not isolated, and `make down` by that
user ends everything. (Root creates that user: the test is CI's, which runs as root.)"""

import os
import pwd
import subprocess
import sys

import pytest

from codepilot_spawner.onemachine.launcher import closed_folder

from .support.hubtools import make_data_dir, start_hub, wait_until
from .support.paths import REPO_ROOT
from .support.terminals import run_in_terminal

pytestmark = [pytest.mark.integration, pytest.mark.root]
ACCOUNT = "cp-test-nonroot"  # the cp- prefix: what Code Pilot's tests may create


@pytest.fixture(scope="module")
def account():
    if closed_folder(REPO_ROOT) is not None:
        pytest.skip(f"{closed_folder(REPO_ROOT)} is closed to other users")
    created = subprocess.run(["useradd", "--create-home", "--user-group", ACCOUNT]).returncode
    user = pwd.getpwnam(ACCOUNT)
    yield user
    if created == 0:
        subprocess.run(["userdel", "--remove", ACCOUNT], capture_output=True)


def as_account(user) -> tuple[str, ...]:
    return ("setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups")


def test_a_hub_that_is_not_root_runs_servers_as_its_own_user_and_says_so(account):
    data_dir = make_data_dir("codepilot-nonroot-")
    os.chown(data_dir, account.pw_uid, account.pw_gid)
    hub = start_hub(
        data_dir,
        env={"HOME": account.pw_dir, "USER": ACCOUNT, "LOGNAME": ACCOUNT},
        prefix=as_account(account),
    )
    try:
        assert "Isolation: OFF, the hub is not root" in hub.log()
        hub.create_user("nina")
        hub.start_server("nina")
        with hub.open_terminal("nina", hub.user_token("nina")) as ws:
            output = run_in_terminal(ws, "echo user=$(id -un)", f"user={ACCOUNT}")
        assert f"user={ACCOUNT}" in output
        logs = data_dir / "logs" / "hub.log"
        assert "users are NOT isolated" in logs.read_text()
        assert logs.stat().st_uid == account.pw_uid
    finally:
        down = subprocess.run(
            [
                *as_account(account),
                sys.executable,
                "-m",
                "codepilot_spawner.onemachine.launcher",
                "stop-all",
            ],
            env={**hub.env, "HOME": account.pw_dir},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        hub.process.wait(30)
    assert down.returncode == 0, down.stderr
    assert "stopped the hub" in down.stdout and "1 server" in down.stdout, down.stdout

    def nothing_of_the_account_runs():
        return not [
            entry.name
            for entry in os.scandir("/proc")
            if entry.name.isdigit() and entry.stat().st_uid == account.pw_uid
        ]

    wait_until(nothing_of_the_account_runs, 10, 0.1, "every process of the hub's user to end")
