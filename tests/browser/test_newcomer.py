"""A newcomer's first run: the README's commands verbatim, in a fresh clone, no variable set.

`make up` installs and starts everything with the default data dir and ports; the
passwords it prints open the login form in Chromium; `make up` again and a taken port
each say what is going on; Ctrl-C keeps the servers for the next `make up`; `make down`
ends every process of the clone and frees every port, and a second one says so.
The tests run in order and share the clone and its hub.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from codepilot_spawner.onemachine.settings import DEFAULT_ACCOUNT_PREFIX

from ..support.hubtools import remove_accounts, wait_until
from ..support.paths import REPO_ROOT
from .lab import (
    SPAWN_TIMEOUT_MS,
    Terminal,
    log_in,
    make_terminal_readable,
    open_preview_tile,
    show_launcher,
    start_from_spawn_form,
    wait_for_lab,
)

pytestmark = pytest.mark.browser

URL = "http://localhost:8000"  # what the README says `make up` serves
DEFAULT_PORTS = (8000, 8001, 8002, 8081, 8083)  # proxy, its API, previews, hub, preview API
INSTALL_TIMEOUT = 900  # a fresh clone installs its venv and npm packages first
STUDENT = "newcomer"
IDE = f"http://{STUDENT}.localhost:8000/user/{STUDENT}/"  # the student's host, as printed


def newcomer_env() -> dict:
    """This environment as a person's shell has it: no Code Pilot or make variables."""
    drop = ("CODEPILOT_", "MAKE", "MFLAGS", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    for name in ("VENV", "PYTHON", "BIN", "PYTHONPATH"):  # the Makefile's own knobs
        env.pop(name, None)
    return env


def fresh_clone(destination: Path) -> None:
    """``git clone`` of this repository, with its uncommitted changes (none in CI)."""
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(destination)], check=True)
    diff = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "diff", "HEAD", "--binary"], capture_output=True, check=True
    ).stdout
    if diff:
        subprocess.run(["git", "-C", str(destination), "apply"], input=diff, check=True)
    untracked = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, untracked.decode().split("\0")):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination / name)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def processes_of(folder: Path) -> list[str]:
    """Every process whose command line or working directory lies in ``folder``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"{entry.path}/cwd")
        except OSError:
            continue
        if str(folder) in command or cwd.startswith(str(folder)):
            found.append(f"{entry.name}: {command.strip()} (in {cwd})")
    return found


@dataclass
class Newcomer:
    clone: Path
    env: dict
    up: subprocess.Popen
    output: Path
    student_password: str = ""
    admin_password: str = ""

    def make(self, target: str, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", target],
            cwd=self.clone,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_up(self) -> None:
        with open(self.output, "ab") as output:
            self.up = subprocess.Popen(
                ["make", "up"],
                cwd=self.clone,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal's job
            )

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_for_hub(self, timeout: float) -> None:
        def answering():
            if self.up.poll() is not None:
                raise AssertionError(f"make up exited ({self.up.returncode}):\n{self.printed()}")
            try:
                return requests.get(f"{URL}/hub/api/", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(answering, timeout, 0.5, "the hub of `make up`")


@pytest.fixture(scope="module")
def newcomer():
    taken = [port for port in DEFAULT_PORTS if port_open(port)]
    if taken:
        pytest.fail(f"the default ports {taken} are taken: stop what holds them (make down)")
    root = Path(tempfile.mkdtemp(prefix="codepilot-newcomer-"))
    root.chmod(0o755)  # as root, servers' Unix users pass through to the clone's venv
    clone = root / "code-pilot"
    fresh_clone(clone)
    person = Newcomer(clone, newcomer_env(), None, root / "make-up.out")
    person.start_up()
    try:
        person.wait_for_hub(INSTALL_TIMEOUT)
        printed = person.printed()
        person.student_password = re.search(r"Students: any user name, password (\S+)", printed)[1]
        person.admin_password = re.search(r"Admin: +user admin, password (\S+)", printed)[1]
        yield person
    finally:
        if person.up.poll() is None:
            os.killpg(person.up.pid, signal.SIGTERM)
            person.up.wait(60)
        person.make("down")
        # Its accounts (cp-newcomer) would refuse the next run's data dir.
        remove_accounts(clone / ".codepilot", DEFAULT_ACCOUNT_PREFIX)
        shutil.rmtree(root, ignore_errors=True)


def test_the_printed_passwords_log_in_and_the_student_gets_a_terminal(newcomer, new_context):
    assert "Data:     " + str(newcomer.clone / ".codepilot") in newcomer.printed()
    page = new_context("newcomer").new_page()
    log_in(page, URL, STUDENT, newcomer.student_password)
    start_from_spawn_form(page, starter="")
    wait_for_lab(page)
    assert page.url.startswith(f"{IDE}lab")
    make_terminal_readable(page, IDE)
    page.goto(f"{IDE}lab?reset")
    wait_for_lab(page)
    show_launcher(page)
    terminal = Terminal.open_from_launcher(page)
    assert terminal.run_and_wait("echo $((6 * 7)) answered", "42 answered") == ""
    # The default preview domain needs no setup: the Preview tile opens the app.
    terminal.run("touch newcomer.txt && python -m http.server $PORT")
    terminal.wait_for_text("Serving HTTP on")
    preview = open_preview_tile(page)
    assert re.fullmatch(r"http://newcomer-[^/]+\.preview\.localhost:8002/", preview.url)
    expect(preview.get_by_role("link", name="newcomer.txt")).to_be_visible()
    # One set of state: the hub's database, secret and passwords, in the printed data dir.
    data_dir = newcomer.clone / ".codepilot"
    assert (data_dir / "jupyterhub.sqlite").exists()
    assert not (data_dir / ".codepilot").exists()
    assert (data_dir / "workspaces" / STUDENT / "default").is_dir()


def test_the_printed_admin_password_opens_the_admin_panel(newcomer, new_context):
    page = new_context("admin").new_page()
    log_in(page, URL, "admin", newcomer.admin_password, next_path="/hub/admin")
    page.wait_for_url(re.compile(r"/hub/admin"), timeout=SPAWN_TIMEOUT_MS)
    page.get_by_text(STUDENT, exact=True).first.wait_for(timeout=SPAWN_TIMEOUT_MS)


def test_make_up_again_says_it_is_running_and_starts_nothing(newcomer):
    again = newcomer.make("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Code Pilot is already running at {URL}" in again.stdout
    assert newcomer.student_password in again.stdout
    assert "Traceback" not in again.stdout + again.stderr
    assert newcomer.up.poll() is None


def test_a_second_install_on_the_same_port_is_told_which_variable_moves_it(newcomer):
    other = newcomer.clone / "second"
    refused = newcomer.make("up", CODEPILOT_DATA_DIR=str(other))
    assert refused.returncode != 0
    assert "port 8000 (127.0.0.1) is in use by another program: set CODEPILOT_PORT" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stdout + refused.stderr
    assert not other.exists(), "a refused start wrote files"


def test_ctrl_c_stops_the_hub_and_the_next_make_up_finds_the_server(newcomer):
    started = time.monotonic()
    os.killpg(newcomer.up.pid, signal.SIGINT)  # Ctrl-C in make up's terminal
    newcomer.up.wait(60)
    wait_until(
        lambda: not any(port_open(port) for port in DEFAULT_PORTS),
        30,
        0.1,
        "the hub, its proxy and services to free their ports",
    )
    print(f"Ctrl-C: every port free after {time.monotonic() - started:.1f} s")
    newcomer.start_up()
    newcomer.wait_for_hub(120)
    session = requests.Session()
    session.get(f"{URL}/hub/login", timeout=30)
    session.post(
        f"{URL}/hub/login",
        data={
            "username": STUDENT,
            "password": newcomer.student_password,
            "_xsrf": session.cookies["_xsrf"],
        },
        timeout=30,
    )
    # The server kept running without a hub: the restarted hub routes it again.
    response = session.get(f"{IDE}api/contents", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "directory"


def test_make_down_ends_every_process_and_frees_every_port_then_has_nothing_to_do(newcomer):
    assert processes_of(newcomer.clone), "nothing of the clone runs before make down"
    started = time.monotonic()
    down = newcomer.make("down")
    took = time.monotonic() - started
    print(f"make down took {took:.1f} s: {down.stdout.strip()}")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "codepilot: stopped the hub, " in down.stdout
    assert "1 server" in down.stdout
    newcomer.up.wait(30)
    assert processes_of(newcomer.clone) == []
    assert [port for port in DEFAULT_PORTS if port_open(port)] == []
    again = newcomer.make("down")
    assert again.stdout.strip().endswith("codepilot: nothing was running"), again.stdout
