"""The launcher (`make up`, `make down`) without a hub: settings handed on once, passwords
decided before anything is written, ports and leftovers found, the proxy stopped."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from codepilot_spawner.onemachine.launcher import (
    closed_folder,
    login_banner,
    make_data_dir,
    port_taken,
    ports_still_taken,
    taken_ports,
)
from codepilot_spawner.onemachine.passwords import PasswordError, decide, keep
from codepilot_spawner.onemachine.processes import Process, terminate
from codepilot_spawner.onemachine.settings import OneMachineSettings, SettingsError
from codepilot_spawner.onemachine.stopall import PROXY_PID_FILE

from .support.hubtools import free_port, wait_until
from .support.paths import REPO_ROOT

CHP = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"


def launcher(*args, env: dict, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("CODEPILOT_")}
    return subprocess.run(
        [sys.executable, "-m", "codepilot_spawner.onemachine.launcher", *args],
        env={**scrubbed, "PYTHONPATH": str(REPO_ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


PORT_VARIABLES = (
    "CODEPILOT_PORT",
    "CODEPILOT_HUB_PORT",
    "CODEPILOT_PROXY_API_PORT",
    "CODEPILOT_PREVIEW_GATEWAY_PORT",
    "CODEPILOT_PREVIEW_API_PORT",
)


# --- the data dir, resolved once -----------------------------------------------------


@pytest.mark.parametrize("name", ["state", "with spaces/state", "../elsewhere/state"])
def test_a_relative_data_dir_is_resolved_once_and_the_hub_gets_it_absolute(
    tmp_path, monkeypatch, name
):
    work = tmp_path / "clone"
    work.mkdir()
    monkeypatch.chdir(work)
    settings = OneMachineSettings.from_env({"CODEPILOT_DATA_DIR": name})
    assert settings.data_dir == (work / name).resolve()
    # What the launcher hands on, read from the hub's working directory (the data dir).
    make_data_dir(settings.data_dir)
    monkeypatch.chdir(settings.data_dir)
    handed_on = {"CODEPILOT_DATA_DIR": str(settings.data_dir)}
    assert OneMachineSettings.for_hub(handed_on).data_dir == settings.data_dir


def test_a_symlinked_data_dir_is_the_folder_it_points_to(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    settings = OneMachineSettings.from_env({"CODEPILOT_DATA_DIR": "link"})
    assert settings.data_dir == tmp_path / "real"


@pytest.mark.parametrize("value", ["", ".codepilot", "relative/dir"])
def test_the_hub_config_refuses_a_data_dir_it_would_have_to_resolve(value):
    with pytest.raises(SettingsError, match="not an absolute path"):
        OneMachineSettings.for_hub({"CODEPILOT_DATA_DIR": value})


def test_a_missing_data_dir_is_created_private_with_its_logs_and_database(tmp_path):
    data_dir = tmp_path / "not" / "there" / "yet"
    make_data_dir(data_dir)
    assert data_dir.stat().st_mode & 0o777 == 0o711
    assert (data_dir / "logs").stat().st_mode & 0o777 == 0o700
    assert (data_dir / "jupyterhub.sqlite").stat().st_mode & 0o777 == 0o600


# --- passwords: decided, then kept, then read as they are ----------------------------


def test_generated_passwords_are_written_only_when_kept_and_read_back_unchanged(tmp_path):
    decided = decide(tmp_path, env={}, teachers=True)
    assert not list(tmp_path.iterdir()), "deciding must write nothing"
    keep(decided)
    for name in ("password", "admin_password", "teacher_password"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    # The hub config reads exactly these; a second launch decides the same.
    for again in (decide(tmp_path, env={}, teachers=True, generate=False), decide(tmp_path, {})):
        assert (again.student, again.admin) == (decided.student, decided.admin)
        assert not again.generated
    assert len(decided.student) >= 8 and len(decided.admin) >= 32


def test_the_hub_config_never_generates_a_password_of_its_own(tmp_path):
    with pytest.raises(PasswordError, match="make up"):
        decide(tmp_path, env={}, generate=False)
    assert not list(tmp_path.iterdir())


def test_passwords_from_the_environment_win_and_are_not_written(tmp_path):
    env = {"CODEPILOT_PASSWORD": "class-password", "CODEPILOT_ADMIN_PASSWORD": "a" * 32}
    decided = decide(tmp_path, env=env)
    assert (decided.student, decided.admin, decided.generated) == ("class-password", "a" * 32, ())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CODEPILOT_PASSWORD": "short"}, "CODEPILOT_PASSWORD must be at least 8"),
        ({"CODEPILOT_ADMIN_PASSWORD": "x" * 10}, "CODEPILOT_ADMIN_PASSWORD must be at least 32"),
        ({"CODEPILOT_PASSWORD": "p" * 40, "CODEPILOT_ADMIN_PASSWORD": "p" * 40}, "must differ"),
        ({"CODEPILOT_TEACHER_PASSWORD": "t"}, "CODEPILOT_TEACHER_PASSWORD must be at least 8"),
    ],
)
def test_unusable_passwords_are_refused(tmp_path, env, message):
    with pytest.raises(PasswordError, match=message):
        decide(tmp_path, env=env, teachers=True)


@pytest.mark.integration
def test_a_refused_start_leaves_no_data_dir_and_no_password_files(tmp_path):
    data_dir = tmp_path / "new"
    done = launcher(env={"CODEPILOT_DATA_DIR": str(data_dir), "CODEPILOT_PASSWORD": "short"})
    assert done.returncode == 1
    assert "codepilot: CODEPILOT_PASSWORD must be at least 8 characters" in done.stderr
    assert "Traceback" not in done.stderr
    assert not data_dir.exists()


@pytest.mark.integration
def test_a_data_dir_that_cannot_be_made_is_named_without_a_traceback(tmp_path):
    (tmp_path / "a-file").write_text("")
    data_dir = tmp_path / "a-file" / "data"
    env = {"CODEPILOT_DATA_DIR": str(data_dir)}
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    done = launcher(env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"codepilot: cannot use the data directory {data_dir}: {tmp_path / 'a-file'} is not "
        "a folder; set CODEPILOT_DATA_DIR to a folder you may write"
    )


@pytest.mark.integration
def test_a_data_dir_the_system_refuses_is_named_without_a_traceback(tmp_path):
    env = {"CODEPILOT_DATA_DIR": "/proc/codepilot-data"}
    env.update({name: str(free_port()) for name in PORT_VARIABLES})
    done = launcher(env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("codepilot: ")
    assert "/proc/codepilot-data" in done.stderr
    assert "set CODEPILOT_DATA_DIR to a folder you may write" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_banner_says_who_may_log_in(tmp_path):
    decided = decide(tmp_path, env={})
    everyone = OneMachineSettings.from_env({"CODEPILOT_DATA_DIR": str(tmp_path)})
    assert "Students: any user name, password " + decided.student in login_banner(everyone, decided)
    closed = OneMachineSettings.from_env(
        {"CODEPILOT_DATA_DIR": str(tmp_path), "CODEPILOT_ALLOW_ALL": "false"}
    )
    banner = login_banner(closed, decided)
    assert "any user name" not in banner
    assert "Students: users the admin has added" in banner


def test_the_banner_says_where_ides_are_and_what_sharing_an_origin_costs(tmp_path):
    decided = decide(tmp_path, env={})
    own = OneMachineSettings.from_env({"CODEPILOT_DATA_DIR": str(tmp_path)})
    assert "http://<user>.localhost:8000/user/<user>/" in login_banner(own, decided)
    shared = OneMachineSettings.from_env(
        {"CODEPILOT_DATA_DIR": str(tmp_path), "CODEPILOT_SUBDOMAINS": "false"}
    )
    banner = login_banner(shared, decided)
    assert "CODEPILOT_SUBDOMAINS=false" in banner
    assert "runs that student's code with their own rights" in banner


# --- ports and the install itself -----------------------------------------------------


@pytest.mark.integration
def test_a_taken_port_is_named_with_the_variable_that_moves_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            "CODEPILOT_DATA_DIR": str(tmp_path),
            "CODEPILOT_PREVIEW_API_PORT": str(port),
            **{name: str(free_port()) for name in PORT_VARIABLES if "PREVIEW_API" not in name},
        }
        settings = OneMachineSettings.from_env(env)
        assert taken_ports(settings) == [
            f"port {port} (127.0.0.1) is in use by another program: "
            "set CODEPILOT_PREVIEW_API_PORT to a free port"
        ]
        done = launcher(env={**env, "CODEPILOT_DATA_DIR": str(tmp_path / "refused")})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} (127.0.0.1) is in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "refused" / "password").exists()


def test_a_killed_hubs_service_gets_time_to_let_its_port_go(tmp_path):
    """After a hub was killed its services end by themselves, a moment later: the launcher
    waits for their ports rather than refuse the restart."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    env = {"CODEPILOT_DATA_DIR": str(tmp_path), "CODEPILOT_PORT": str(holder.getsockname()[1])}
    env |= {
        name: str(free_port())
        for name in (
            "CODEPILOT_HUB_PORT",
            "CODEPILOT_PROXY_API_PORT",
            "CODEPILOT_PREVIEW_GATEWAY_PORT",
            "CODEPILOT_PREVIEW_API_PORT",
        )
    }
    settings = OneMachineSettings.from_env(env)
    assert len(ports_still_taken(settings, wait=0)) == 1
    letting_go = threading.Timer(0.5, holder.close)
    letting_go.start()
    try:
        assert ports_still_taken(settings, wait=10) == []
    finally:
        letting_go.cancel()
        holder.close()


def test_a_folder_others_cannot_pass_through_is_named():
    root = Path(tempfile.mkdtemp(prefix="codepilot-closed-"))  # /tmp: open above it
    try:
        root.chmod(0o755)
        home = root / "home"
        (home / "repo").mkdir(parents=True)
        home.chmod(0o700)  # root's home, where a newcomer clones as root
        assert closed_folder(home / "repo") == home
        home.chmod(0o711)
        assert closed_folder(home / "repo") is None
    finally:
        shutil.rmtree(root)


# --- make down ------------------------------------------------------------------------


@pytest.fixture
def orphaned_proxy(tmp_path):
    """A real configurable-http-proxy whose hub is gone: only its pid file names it."""
    port = free_port()
    proxy = subprocess.Popen(
        [str(CHP), "--ip", "127.0.0.1", "--port", str(port), "--api-port", str(free_port())],
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": "t" * 32},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def listening():
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 30, 0.1, "the proxy to listen")
    (tmp_path / PROXY_PID_FILE).write_text(f"{proxy.pid}\n")
    yield proxy, port
    if proxy.poll() is None:
        proxy.kill()
    proxy.wait()


@pytest.mark.integration
def test_make_down_stops_a_proxy_its_killed_hub_left_and_says_so_once(tmp_path, orphaned_proxy):
    proxy, port = orphaned_proxy
    first = launcher("stop-all", env={"CODEPILOT_DATA_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    assert "1 of its processes" in first.stdout, first.stdout
    assert proxy.wait(10) is not None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the proxy's port is still open"
    second = launcher("stop-all", env={"CODEPILOT_DATA_DIR": str(tmp_path)})
    assert second.stdout.strip() == "codepilot: nothing was running", second.stdout


@pytest.mark.integration
def test_a_reused_pid_is_not_the_process_it_was(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        process = Process.read(sleeper.pid)
        assert process and process.alive()
        stranger = Process(sleeper.pid, process.started + 1)  # same pid, another start
        assert not stranger.alive()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not process.alive()


@pytest.mark.integration
def test_make_down_without_a_data_dir_says_nothing_was_running(tmp_path):
    done = launcher("stop-all", env={"CODEPILOT_DATA_DIR": str(tmp_path / "none")})
    assert done.returncode == 0
    assert done.stdout.startswith("codepilot: nothing was running")


@pytest.mark.integration
def test_make_down_on_a_fresh_data_dir_or_one_whose_hub_uses_another_database(tmp_path):
    make_data_dir(tmp_path)  # the empty SQLite file the launcher makes
    done = launcher("stop-all", env={"CODEPILOT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "codepilot: nothing was running"


@pytest.mark.integration
def test_a_process_that_ignores_sigterm_is_gone_with_its_port_when_terminate_returns():
    """A leftover proxy slow to answer SIGTERM (a busy machine) is killed, and the next
    hub's port check runs only once its port is free."""
    port = free_port()
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"s = socket.create_server(('127.0.0.1', {port})); print('ok', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout.readline().strip() == "ok"
        assert port_taken("127.0.0.1", port)
        assert asyncio.run(terminate([Process.read(stubborn.pid)], grace=0.5)) == 1
        assert not port_taken("127.0.0.1", port)
    finally:
        stubborn.kill()
        stubborn.wait()
