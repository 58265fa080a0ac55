"""The pure pieces of the hub side, without a hub."""

import asyncio
import os
import pwd
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from traitlets import Bool, Enum, Int, Unicode
from traitlets.config import Configurable

from codepilot_contracts.env import env_name
from codepilot_spawner.onemachine.cgroups import Hierarchy
from codepilot_spawner.onemachine.processes import TAG_VARIABLE, end_tagged_processes, tagged_pids
from codepilot_spawner.onemachine.settings import (
    AUTOMATION_SCOPES,
    OneMachineSettings,
    SettingsError,
    automation_service,
    spawn_throttle,
)
from codepilot_spawner.onemachine.stopall import remove_hub_cgroup
from codepilot_spawner.onemachine.unixusers import (
    AccountTaken,
    ensure_unix_user,
    lookup,
    remove_unix_user,
    unix_username,
)
from codepilot_spawner.onemachine.workspaces import path_segment, workspace_path
from codepilot_spawner.services.classpage.app import ClassPageApp
from codepilot_spawner.spawners.progresslog import ProgressLog
from server_extension.envconfig import EnvDefaultsMixin, env_settings


@pytest.mark.parametrize(
    ("hub_name", "unix_name"),
    [("alice", "cp-alice"), ("bob-2", "cp-bob-2"), ("x_y", "cp-x_y")],
)
def test_safe_hub_names_keep_their_spelling(hub_name, unix_name):
    assert unix_username(hub_name) == unix_name


@pytest.mark.parametrize("hub_name", ["Alice", "a.b", "émile", "a" * 40, "x@example.org"])
def test_other_names_are_made_safe_and_distinct(hub_name):
    name = unix_username(hub_name)
    assert len(name) <= 32
    assert name.startswith("cp-")
    assert all(c.isascii() and (c.islower() or c.isdigit() or c in "-_") for c in name)
    assert name != unix_username(hub_name + "x")


def test_names_differing_only_in_case_get_different_accounts():
    assert unix_username("Alice") != unix_username("alice")


@pytest.fixture
def account_name():
    """A name no account has, its account (when a test makes one) removed afterwards."""
    name = f"cpt{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["userdel", name], capture_output=True)


@pytest.mark.integration
@pytest.mark.root
async def test_an_account_is_made_with_its_home_and_then_adopted_with_it(account_name):
    home = "/var/tmp/codepilot-a/homes/alice"
    made = await ensure_unix_user(account_name, home, "Code Pilot user alice")
    assert (made.pw_dir, made.pw_shell) == (home, "/bin/bash")
    assert await ensure_unix_user(account_name, home + "/", "Code Pilot user alice") == made


@pytest.fixture
def other_data_dirs_home(tmp_path) -> str:
    """The home of alice in another data dir that is there (a hub may be using it)."""
    home = tmp_path / "a/homes/alice"
    home.mkdir(parents=True)
    return str(home)


@pytest.mark.integration
@pytest.mark.root
async def test_an_account_of_another_data_dir_is_refused_and_kept(
    account_name, other_data_dirs_home, tmp_path
):
    theirs, ours = other_data_dirs_home, str(tmp_path / "b/homes/alice")
    made = await ensure_unix_user(account_name, theirs, "Code Pilot user alice")
    with pytest.raises(AccountTaken) as refused:
        await ensure_unix_user(account_name, ours, "Code Pilot user alice")
    message = str(refused.value)
    assert account_name in message and theirs in message
    assert "set CODEPILOT_ACCOUNT_PREFIX" in message
    assert refused.value.jupyterhub_message == message  # the spawn page shows it as is

    problem = await remove_unix_user(account_name, ours)
    assert theirs in problem
    assert lookup(account_name) == made
    assert await remove_unix_user(account_name, theirs) is None
    assert lookup(account_name) is None
    assert await remove_unix_user(account_name, theirs) is None  # gone already: nothing to do


@pytest.mark.integration
@pytest.mark.root
async def test_an_account_whose_data_dir_is_gone_moves_to_the_new_one(account_name, tmp_path):
    gone, new = str(tmp_path / "deleted/homes/alice"), str(tmp_path / "new/homes/alice")
    made = await ensure_unix_user(account_name, gone, "Code Pilot user alice")
    moved = await ensure_unix_user(account_name, new, "Code Pilot user alice")
    assert (moved.pw_uid, moved.pw_dir) == (made.pw_uid, new)


async def test_a_system_account_of_the_name_is_never_adopted():
    nobody = pwd.getpwnam("nobody")
    with pytest.raises(AccountTaken, match=re.escape(f"exists with the home {nobody.pw_dir},")):
        await ensure_unix_user("nobody", "/var/tmp/codepilot-a/homes/nobody", "no")
    assert pwd.getpwnam("nobody") == nobody


@pytest.mark.parametrize("name", ["..", ".", "../etc", "a/b", ".hidden"])
def test_path_segments_never_escape(tmp_path, name):
    segment = path_segment(name)
    assert "/" not in segment
    assert segment not in (".", "..")
    assert not segment.startswith(".")
    assert workspace_path(tmp_path, name, name).parent.parent == tmp_path / "workspaces"


def test_default_server_has_the_default_folder(tmp_path):
    assert workspace_path(tmp_path, "alice", "") == tmp_path / "workspaces" / "alice" / "default"


class Settings(EnvDefaultsMixin, Configurable):
    port = Int(3000, help="a port").tag(config=True)
    mode = Enum(["local", "sync"], "local", help="a mode").tag(config=True)
    verbose = Bool(False, help="a flag").tag(config=True)
    internal = Unicode("x", help="not configurable")


def test_environment_variables_set_config_traits(monkeypatch):
    monkeypatch.setenv("CODEPILOT_PORT", "4000")
    monkeypatch.setenv("CODEPILOT_MODE", "sync")
    monkeypatch.setenv("CODEPILOT_VERBOSE", "true")
    monkeypatch.setenv("CODEPILOT_INTERNAL", "ignored")
    settings = Settings()
    assert (settings.port, settings.mode, settings.verbose) == (4000, "sync", True)
    assert settings.internal == "x"


def test_config_wins_over_the_environment(monkeypatch):
    from traitlets.config import Config

    monkeypatch.setenv("CODEPILOT_PORT", "4000")
    config = Config()
    config.Settings.port = 5000
    assert Settings(config=config).port == 5000


def test_a_bad_variable_names_itself(monkeypatch):
    monkeypatch.setenv("CODEPILOT_MODE", "cloud")
    with pytest.raises(ValueError, match="CODEPILOT_MODE='cloud'"):
        Settings()
    assert env_name("preview_port") == "CODEPILOT_PREVIEW_PORT"
    assert env_settings({"port": Settings.class_traits()["port"]}, {"CODEPILOT_PORT": "7"}) == {
        "port": 7
    }


async def test_progress_followers_get_every_event_in_order():
    log = ProgressLog()
    log.report(10, "one")

    async def collect():
        return [event["message"] async for event in log.follow()]

    followers = [asyncio.create_task(collect()) for _ in range(2)]
    await asyncio.sleep(0)
    log.report(50, "two")
    await asyncio.sleep(0)
    log.report(80, "three")
    log.finish()
    assert await asyncio.gather(*followers) == [["one", "two", "three"]] * 2
    assert [e["message"] async for e in log.follow()] == ["one", "two", "three"]


@pytest.mark.integration
async def test_tagged_processes_are_found_and_ended_even_when_they_ignore_sigterm():
    tag = uuid.uuid4().hex
    tagged_env = {**os.environ, TAG_VARIABLE: tag}
    ignore_term = "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(60)"

    async def start(*command, env=None):
        return await asyncio.create_subprocess_exec(*command, env=env, start_new_session=True)

    stubborn = await start(sys.executable, "-c", ignore_term, env=tagged_env)
    polite = await start("sleep", "60", env=tagged_env)
    other = await start("sleep", "60")
    try:
        await asyncio.sleep(0.3)
        assert set(tagged_pids(tag)) == {stubborn.pid, polite.pid}
        killed = await end_tagged_processes(tag, grace=1.0)
        assert killed == [stubborn.pid]
        assert await asyncio.wait_for(stubborn.wait(), 5) == -9
        assert await asyncio.wait_for(polite.wait(), 5) == -15
        assert other.returncode is None
    finally:
        for process in (stubborn, polite, other):
            if process.returncode is None:
                process.kill()
                await process.wait()


def test_one_machine_settings_come_from_the_environment(tmp_path):
    settings = OneMachineSettings.from_env(
        {"CODEPILOT_PORT": "9000", "CODEPILOT_DATA_DIR": str(tmp_path), "CODEPILOT_ALLOW_ALL": "0"}
    )
    assert settings.url == "http://localhost:9000"  # browsers resolve <user>.localhost
    assert settings.data_dir == tmp_path
    assert settings.admin_user == "admin"
    assert settings.named_server_limit == 5
    assert settings.allow_all is False
    assert settings.account_prefix == "cp-"
    assert OneMachineSettings.from_env({"CODEPILOT_ACCOUNT_PREFIX": "cp2-"}).account_prefix == (
        "cp2-"
    )


@pytest.mark.parametrize(
    ("env", "url", "subdomain_host"),
    [
        ({}, "http://localhost:8000", "http://localhost:8000"),
        (
            {"CODEPILOT_PUBLIC_URL": "https://hub.example.test/", "CODEPILOT_IP": "0.0.0.0"},
            "https://hub.example.test",
            "https://hub.example.test",
        ),
        ({"CODEPILOT_SUBDOMAINS": "false"}, "http://127.0.0.1:8000", ""),
        ({"CODEPILOT_SUBDOMAINS": "false", "CODEPILOT_IP": "0.0.0.0"}, "http://0.0.0.0:8000", ""),
    ],
)
def test_users_get_hosts_of_their_own_unless_subdomains_are_off(env, url, subdomain_host):
    env = {"CODEPILOT_PREVIEW_DOMAIN": "preview.example.test", **env}
    settings = OneMachineSettings.from_env(env)
    assert (settings.url, settings.subdomain_host) == (url, subdomain_host)


@pytest.mark.parametrize(
    ("env", "user"),
    [
        ({}, "preview"),  # preview.localhost would be the IDE host of a user "preview"
        ({"CODEPILOT_PREVIEW_DOMAIN": "apps.lab.localhost"}, "lab"),
        ({"CODEPILOT_PREVIEW_DOMAIN": "previews.example.test"}, None),
        ({"CODEPILOT_SUBDOMAINS": "false"}, None),
    ],
)
def test_no_user_gets_the_host_that_holds_the_previews(env, user):
    assert OneMachineSettings.from_env(env).preview_parent_user == user


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CODEPILOT_PORT": "eighty"}, "CODEPILOT_PORT must be a whole number"),
        ({"CODEPILOT_ADMIN_TOKEN": "short"}, "at least 16 characters"),
        ({"CODEPILOT_IP": "0.0.0.0"}, "Set CODEPILOT_PUBLIC_URL to the hub's URL"),
        ({"CODEPILOT_PUBLIC_URL": "http://hub.example.test/hub"}, "must be an origin"),
        ({"CODEPILOT_ACCOUNT_PREFIX": "CP-"}, "CODEPILOT_ACCOUNT_PREFIX='CP-' cannot start"),
        ({"CODEPILOT_ACCOUNT_PREFIX": "2cp-"}, "not starting with a digit or -"),
        ({"CODEPILOT_ACCOUNT_PREFIX": "cp/"}, "lowercase letters, digits, _ and -"),
        ({"CODEPILOT_ACCOUNT_PREFIX": "c" * 17}, "up to 16"),
    ],
)
def test_bad_settings_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        OneMachineSettings.from_env(env)


def test_automation_token_gets_exactly_the_documented_scopes():
    automation = automation_service("t" * 32)
    assert automation.entry == {"name": "codepilot-automation", "api_token": "t" * 32}
    (role,) = automation.roles
    assert role["services"] == ["codepilot-automation"]
    assert role["scopes"] == AUTOMATION_SCOPES


class CountingClassPage(ClassPageApp):
    """The class page's loop, with the reads it would send the hub counted, not sent."""

    reads = 0

    async def read_class(self) -> dict:
        self.reads += 1
        return {"rows": [], "updated": str(self.reads), "error": ""}


def test_the_class_page_reads_the_class_only_while_a_page_watches():
    async def scenario():
        page = CountingClassPage(refresh_interval=0.01, watch_window=0.3, server_timeout=1.0)
        page.wake, page.read_done = asyncio.Event(), asyncio.Event()
        loop = asyncio.ensure_future(page.refresh_forever())
        try:
            await asyncio.sleep(0.2)
            assert page.reads == 0, "nobody watched, yet the class was read"
            # A page's first poll after the rest gets a fresh read, not the old snapshot.
            snapshot = await page.current_snapshot()
            assert snapshot["updated"] == "1"
            await asyncio.sleep(0.15)
            assert page.reads > 3, "the class was not read again while the page watched"
            await asyncio.sleep(0.4)  # the window ends: the loop rests
            rested_at = page.reads
            await asyncio.sleep(0.3)
            assert page.reads == rested_at
        finally:
            loop.cancel()

    asyncio.run(scenario())


def test_pending_starts_scale_with_the_cores_and_a_turned_away_student_retries_soon():
    two_cores = spawn_throttle(2)
    assert two_cores["concurrent_spawn_limit"] == 200  # a class of 200 starts at once
    assert spawn_throttle(16)["concurrent_spawn_limit"] == 1600
    assert spawn_throttle(None)["concurrent_spawn_limit"] == 100  # cores unknown
    low, high = two_cores["spawn_throttle_retry_range"]
    assert 0 < low <= high <= 15  # JupyterHub's own is 30 to 60 s


def test_make_down_removes_the_hubs_cgroups_and_their_parent_once_no_hub_is_left(tmp_path):
    # Two v1 trees as directories; the kernel's rmdir also refuses a group that holds one.
    roots = {"cpu": str(tmp_path / "cpu"), "memory": str(tmp_path / "memory")}
    for root in roots.values():
        for hub in ("hub-a", "hub-b"):
            Path(root, "codepilot", hub).mkdir(parents=True)
    hierarchy = Hierarchy(1, roots)
    remove_hub_cgroup(hierarchy, "hub-a")
    for root in roots.values():
        assert sorted(os.listdir(os.path.join(root, "codepilot"))) == ["hub-b"]
    remove_hub_cgroup(hierarchy, "hub-b")
    assert all(os.listdir(root) == [] for root in roots.values())
