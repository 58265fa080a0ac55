"""Start the real one-machine hub (JupyterHub + configurable-http-proxy) for tests.

Nothing here imitates a part of Code Pilot: `start_hub` runs the same launcher as
`make up`, on free loopback ports, with a data directory of its own.
"""

import itertools
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from urllib.parse import urlsplit

import requests
from jupyterhub.utils import subdomain_hook_idna

from codepilot_spawner.onemachine.settings import DEFAULT_ACCOUNT_PREFIX
from codepilot_spawner.onemachine.unixusers import unix_username

from .localhost import install_localhost_resolver
from .paths import REPO_ROOT
from .terminals import open_terminal

# Hubs serve each user at <user>.localhost and previews at *.preview.localhost: whatever
# drives one from Python (the tests, the benchmarks) resolves those names as browsers do.
install_localhost_resolver()


# Ports a test draws for servers it starts. A port drawn is free only until someone binds
# it: so each pytest-xdist worker draws from a block of its own, below the kernel's
# ephemeral range (32768 and up), where no other worker and no outgoing connection
# takes one meanwhile.
TEST_PORTS = range(20000, 32768)
_next_port = itertools.count()


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    if not worker.startswith("gw"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    # TEST_PORTS split evenly between the run's workers, however many there are.
    size = len(TEST_PORTS) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    block = TEST_PORTS[int(worker[2:]) * size :][:size]
    for _ in block:
        port = block[next(_next_port) % len(block)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {block.start}-{block.stop - 1}")


def has_ipv6_loopback() -> bool:
    """Whether this machine has ::1 (containers may run IPv4 only)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {message}")


def wait_answering(process, probe, timeout: float, what: str, output=lambda: "") -> None:
    """Wait until ``probe()`` is true for a server we started; fail fast if it exits.

    Connection errors count as "not yet"; ``output()`` adds the server's log to errors.
    """

    def up():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{output()}")
        try:
            return probe()
        except requests.ConnectionError:
            return False

    wait_until(up, timeout, 0.1, f"{what} to answer")


def make_data_dir(prefix: str = "codepilot-test-") -> Path:
    """A data dir that isolated Unix users can pass through (pytest's are 0700), in
    /var/tmp: not in /tmp, which isolated servers see a folder of their own at."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o711)
    return path


def subdomains_on(env: dict) -> bool:
    """Whether a hub of this environment serves users on hosts of their own."""
    return env.get("CODEPILOT_SUBDOMAINS", "true").lower() in ("1", "true", "yes")


def fresh_account_prefix() -> str:
    """A prefix no account on the machine has (``t1a2b-``): test hubs reuse user names
    such as alice, and a hub refuses an account of another data dir's."""
    while True:
        prefix = f"t{os.urandom(2).hex()}-"
        if not any(account.pw_name.startswith(prefix) for account in pwd.getpwall()):
            return prefix


@dataclass
class RunningHub:
    url: str
    token: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen
    session: requests.Session = field(default_factory=requests.Session)
    env: dict = field(default_factory=dict)  # the hub's environment, ports included

    @property
    def preview_port(self) -> int:
        return int(self.env["CODEPILOT_PREVIEW_GATEWAY_PORT"])

    @property
    def account_prefix(self) -> str:
        return self.env.get("CODEPILOT_ACCOUNT_PREFIX") or DEFAULT_ACCOUNT_PREFIX

    def account(self, user: str) -> str:
        """The Unix account of the hub user ``user`` (its servers run as it as root)."""
        return unix_username(user, self.account_prefix)

    def api(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = {"Authorization": f"token {token or self.token}", **kwargs.pop("headers", {})}
        return self.session.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs
        )

    def all_users(self, state: str = "") -> list[dict]:
        """Every user the hub knows (``state``: ``ready``, ``active``, ``inactive`` or all),
        page by page: the hub answers at most ``api_page_max_limit`` (200) at a time."""
        users, page_size = [], 200
        while True:
            query = f"offset={len(users)}&limit={page_size}" + (f"&state={state}" if state else "")
            page = self.api("GET", f"/users?{query}").json()
            users += page
            if len(page) < page_size:
                return users

    def create_user(self, name: str) -> dict:
        response = self.api("POST", f"/users/{name}")
        if response.status_code == 409:  # exists already
            return self.api("GET", f"/users/{name}").json()
        response.raise_for_status()
        return response.json()

    def user_token(self, name: str) -> str:
        response = self.api("POST", f"/users/{name}/tokens", json={"note": "tests"})
        response.raise_for_status()
        return response.json()["token"]

    def server_path(self, user: str, server_name: str = "") -> str:
        return f"/users/{user}/servers/{server_name}" if server_name else f"/users/{user}/server"

    def start_server(self, user: str, server_name: str = "", timeout: float = 90, **options):
        response = self.api("POST", self.server_path(user, server_name), json=options or None)
        if response.status_code == 400 and "pending stop" in response.text:
            # Still stopping (the idle culler, an earlier stop): start it once it has.
            self.wait_stopped(user, server_name, timeout)
            response = self.api("POST", self.server_path(user, server_name), json=options or None)
        if response.status_code not in (201, 202, 400):
            raise AssertionError(
                f"start {user}/{server_name}: {response.status_code} {response.text}"
            )
        if response.status_code == 400 and "already running" not in response.text:
            raise AssertionError(f"start {user}/{server_name}: {response.text}")
        return self.wait_ready(user, server_name, timeout)

    def wait_ready(self, user: str, server_name: str = "", timeout: float = 90) -> dict:
        def ready():
            server = self.api("GET", f"/users/{user}").json()["servers"].get(server_name)
            return server if server and server["ready"] else None

        return wait_until(ready, timeout, 0.2, f"server {user}/{server_name} ready")

    def stop_server(self, user: str, server_name: str = "", timeout: float = 60) -> None:
        response = self.api("DELETE", self.server_path(user, server_name))
        assert response.status_code in (202, 204), response.text
        self.wait_stopped(user, server_name, timeout)

    def wait_stopped(self, user: str, server_name: str = "", timeout: float = 60) -> None:
        def stopped():
            return server_name not in self.api("GET", f"/users/{user}").json()["servers"]

        wait_until(stopped, timeout, 0.2, f"server {user}/{server_name} stopped")

    def user_host(self, user: str) -> str:
        """The origin of a user's servers: ``<user>.<hub host>`` with subdomains."""
        return self._host(user, "user")

    def service_url(self, name: str) -> str:
        """A hub service's URL: on ``<name>--service.<hub host>`` with subdomains."""
        return f"{self._host(name, 'service')}/services/{name}/"

    def _host(self, name: str, kind: str) -> str:
        if not subdomains_on(self.env):
            return self.url
        hub = urlsplit(self.url)
        return f"{hub.scheme}://{subdomain_hook_idna(name, hub.hostname, kind)}:{hub.port}"

    def server_url(self, user: str, server_name: str = "") -> str:
        suffix = f"{server_name}/" if server_name else ""
        return f"{self.user_host(user)}/user/{user}/{suffix}"

    def open_terminal(self, user: str, token: str, server_name: str = ""):
        """A new terminal of a user's server, through the proxy, and its connected websocket."""
        return open_terminal(self.server_url(user, server_name), token, self.session)

    def log(self) -> str:
        """What `make up` printed (the hub's log), then each part's log in the data dir:
        the proxy, the services, the fork server and the servers it started."""
        parts = [self.log_path.read_text(errors="replace")]
        for path in sorted((self.data_dir / "logs").glob("*.log")):
            if path.name != "hub.log":  # the hub's log is what `make up` printed
                parts.append(f"--- {path.name} ---\n" + path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self, keep_servers: bool = False) -> None:
        """Stop the hub and, unless ``keep_servers``, the servers that outlive it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_servers:
            self.stop_everything()
            self.remove_accounts()

    def remove_accounts(self) -> None:
        remove_accounts(self.data_dir, self.account_prefix)

    def stop_everything(self) -> str:
        """``make down`` for this hub's data dir: every server and namespace it left."""
        done = subprocess.run(
            [sys.executable, "-m", "codepilot_spawner.onemachine.launcher", "stop-all"],
            env={**os.environ, **self.env, "CODEPILOT_DATA_DIR": str(self.data_dir)},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def remove_accounts(data_dir: Path, prefix: str) -> None:
    """As root, userdel the accounts a hub made (``prefix``, homes in ``data_dir``), so
    /etc/passwd does not grow with every run; their processes have ended."""
    if os.geteuid() != 0:
        return
    homes = data_dir.resolve() / "homes"
    for account in pwd.getpwall():
        if account.pw_name.startswith(prefix) and Path(account.pw_dir).parent == homes:
            subprocess.run(["userdel", account.pw_name], capture_output=True, timeout=60)


def start_hub(
    data_dir: Path | None = None,
    env: dict | None = None,
    timeout: float = 60,
    prefix: tuple[str, ...] = (),
    trusted_cert: Path | None = None,
):
    """Run `python -m codepilot_spawner.onemachine.launcher` as `make up` does, and wait for it.

    ``prefix`` runs it through another command first (``setpriv`` to another user). The
    hub's Unix accounts get a prefix of their own unless ``env`` sets one (a restart keeps
    its hub's). ``trusted_cert``: the self-signed certificate of an https hub, which its
    session trusts."""
    data_dir = data_dir or make_data_dir()
    port = free_port()
    token = os.urandom(16).hex()
    hub_env = {
        **os.environ,
        "CODEPILOT_DATA_DIR": str(data_dir),
        "CODEPILOT_PORT": str(port),
        "CODEPILOT_HUB_PORT": str(free_port()),
        "CODEPILOT_PROXY_API_PORT": str(free_port()),
        "CODEPILOT_BROKER_PORT": str(free_port()),
        "CODEPILOT_PREVIEW_GATEWAY_PORT": str(free_port()),
        "CODEPILOT_PREVIEW_API_PORT": str(free_port()),
        "CODEPILOT_ADMIN_TOKEN": token,
        "CODEPILOT_PASSWORD": "class-password",
        "CODEPILOT_ACCOUNT_PREFIX": fresh_account_prefix(),
        **(env or {}),
    }
    # A log per start: servers that outlived a killed hub still write to its old one.
    starts = len(list(data_dir.glob("hub*.log")))
    log_path = data_dir / ("hub.log" if starts == 0 else f"hub-{starts + 1}.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "codepilot_spawner.onemachine.launcher"],
            env=hub_env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Ports and token as the hub got them: `env` may set them (a restart reuses its own).
    host = "localhost" if subdomains_on(hub_env) else "127.0.0.1"
    url = hub_env.get("CODEPILOT_PUBLIC_URL") or f"http://{host}:{hub_env['CODEPILOT_PORT']}"
    token = hub_env["CODEPILOT_ADMIN_TOKEN"]
    hub = RunningHub(url, token, data_dir, log_path, process, env=hub_env)
    if trusted_cert:
        hub.session.verify = str(trusted_cert)
        hub.session.trust_env = False  # else REQUESTS_CA_BUNDLE would win over it

    try:
        wait_answering(
            process,
            lambda: hub.api("GET", "/").status_code == 200,
            timeout,
            "the hub",
            lambda: hub.log()[-3000:],
        )
    except Exception:
        hub.stop()
        raise
    return hub


def server_state(hub: RunningHub, user: str, server_name: str = "", stopped=False) -> dict:
    """The spawner's state of a server as the hub stores it (``stopped``: also of one that
    has stopped)."""
    query = "?include_stopped_servers=1" if stopped else ""
    return hub.api("GET", f"/users/{user}{query}").json()["servers"][server_name]["state"]


class BrowserCookiePolicy(DefaultCookiePolicy):
    """Keeps a ``Domain=localhost`` cookie as a host cookie of ``localhost``, as browsers
    do: with subdomains the hub sets its session id so, and binds its XSRF tokens to it.
    Python's jar would drop it (a domain without a dot)."""

    def set_ok_domain(self, cookie, request):
        if cookie.domain == ".localhost" and request.host.split(":")[0] == "localhost":
            # requests copies cookies into a jar of the default policy to send them
            cookie.domain, cookie.domain_specified = "localhost.local", False
            cookie.domain_initial_dot = False
        return super().set_ok_domain(cookie, request)


def progress_messages(hub: RunningHub, user: str) -> list[str]:
    """Follow the spawn's progress stream (server-sent events) to its end."""
    response = requests.get(
        f"{hub.url}/hub/api/users/{user}/server/progress",
        headers={"Authorization": f"token {hub.token}"},
        stream=True,
        timeout=600,
    )
    messages = []
    for line in response.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            event = json.loads(line[len("data:") :])
            messages.append(event.get("message", ""))
            if event.get("ready") or event.get("failed"):
                break
    return messages


def login(hub: RunningHub, user: str, password: str = "class-password") -> requests.Session:
    """A browser-like session: logged in through the hub's login form, with its cookies."""
    session = requests.Session()
    # An https hub's own certificate, if it has one, as the hub's session trusts it.
    session.verify, session.trust_env = hub.session.verify, hub.session.trust_env
    session.cookies.set_policy(BrowserCookiePolicy())
    session.get(f"{hub.url}/hub/login", timeout=30).raise_for_status()
    response = session.post(
        f"{hub.url}/hub/login",
        # "This is my first time here" ticked: a new name gets its account at once.
        data={
            "username": user,
            "password": password,
            "new_account": "on",
            "_xsrf": session.cookies["_xsrf"],
        },
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302:
        raise AssertionError(f"login as {user} failed: {response.status_code}")
    return session


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


def save_text(server_url: str, path: str, content: str, headers: dict) -> requests.Response:
    """Save a text file through the contents API, as the editor does."""
    return requests.put(
        f"{server_url}api/contents/{path}",
        headers=headers,
        json={"type": "file", "format": "text", "content": content},
        timeout=30,
    )
