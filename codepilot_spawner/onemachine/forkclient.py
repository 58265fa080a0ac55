"""The hub's end of the fork server (``server_extension.startup.forkserver``).

One fork server per hub process, started early (the one-machine config starts it while
the hub loads) so the first start does not wait for its imports. Requests go one at a
time; any failure (it crashed, its imports broke, a reply that never came) raises
``ForkServerUnavailable``, and the spawner starts that server as a plain process. A
fork server that failed is started again at the next request after ``retry_after``.
"""

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time

from codepilot_contracts.forking import (
    ENVIRONMENT_SPACE,
    ENVIRONMENT_SPACE_BYTES,
    encode_request,
    parse_reply,
)
from codepilot_contracts.namespaces import SandboxEntry

# What the fork server's own imports may read from the environment.
PASSED_VARIABLES = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "HOME")


class ForkServerUnavailable(Exception):
    """The fork server could not start this server; start it as a plain process."""


def fork_server_environment(hub_env: dict) -> dict:
    """The fork server's environment: what its imports read, and room for a child's."""
    env = {name: hub_env[name] for name in PASSED_VARIABLES if name in hub_env}
    env[ENVIRONMENT_SPACE] = "." * ENVIRONMENT_SPACE_BYTES
    return env


def home_path_arguments(env: dict) -> list[str]:
    """JupyterLab settings whose defaults it computes from ``$HOME`` when it is imported.

    A forked server was imported in the fork server (root's ``$HOME``), so they are named
    from the server's own environment, as a plain start would compute them.
    """
    config_dir = env.get("JUPYTER_CONFIG_DIR") or os.path.join(env.get("HOME", "~"), ".jupyter")
    settings = env.get("JUPYTERLAB_SETTINGS_DIR") or os.path.join(
        config_dir, "lab", "user-settings"
    )
    workspaces = env.get("JUPYTERLAB_WORKSPACES_DIR") or os.path.join(
        config_dir, "lab", "workspaces"
    )
    return [f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workspaces}"]


def fork_request(argv, env, cwd, account=None, sandbox: SandboxEntry | None = None) -> dict:
    """A request: what a plain start would exec, and who and where to be first."""
    argv = [*argv, *home_path_arguments(env)]
    request = {"argv": argv, "env": dict(env), "cwd": str(cwd)}
    if account is not None:
        request["uid"], request["gid"] = account.pw_uid, account.pw_gid
        request["groups"] = os.getgrouplist(account.pw_name, account.pw_gid)
    request["sandbox"] = (sandbox or SandboxEntry()).to_message()
    return request


DEFAULT_COMMAND = (sys.executable, "-P", "-s", "-m", "server_extension.startup.forkserver")


class ForkServer:
    def __init__(
        self,
        command=DEFAULT_COMMAND,
        start_timeout: float = 120.0,
        reply_timeout: float = 30.0,
        retry_after: float = 60.0,
        log: logging.Logger | None = None,
    ):
        self.command = list(command)
        self.start_timeout = start_timeout
        self.reply_timeout = reply_timeout
        self.retry_after = retry_after
        self.log = log or logging.getLogger("codepilot.forkserver")
        self.process: subprocess.Popen | None = None
        self.ready: dict | None = None
        self.failed_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Start the process (no wait: its ready line is read at the first request)."""
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=fork_server_environment(os.environ),
            cwd="/",
            start_new_session=True,  # a ^C to the hub's terminal is the hub's alone
        )
        self.ready = None

    async def spawn(self, request: dict) -> int:
        """Fork a server for ``request``; its pid. Raises ForkServerUnavailable."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.process is None:
                if self.failed_at and time.monotonic() - self.failed_at < self.retry_after:
                    raise ForkServerUnavailable("it failed recently")
                self.start()
            try:
                if self.ready is None:
                    async with asyncio.timeout(self.start_timeout):
                        line = await self._read_line()
                    ready = parse_reply(line)
                    if not ready.get("ready"):
                        raise ForkServerUnavailable(ready.get("error", "it is not ready"))
                    self.ready = ready
                    self.failed_at = 0.0
                    self.log.info(
                        "Fork server ready (pid %s, imports in %ss)",
                        self.pid,
                        self.ready.get("seconds"),
                    )
                self._next_id += 1
                request = {**request, "id": self._next_id}
                await asyncio.to_thread(self._send, encode_request(request))
                async with asyncio.timeout(self.reply_timeout):
                    reply = parse_reply(await self._read_line())
            except (OSError, ValueError, TimeoutError, ForkServerUnavailable) as error:
                self.discard()
                raise ForkServerUnavailable(describe(error)) from error
        if reply.get("id") != request["id"]:
            # Replies come in order, one per request: anything else is not the child's.
            self.discard()
            raise ForkServerUnavailable(f"a reply for another request: {reply!r:.200}")
        if "pid" not in reply:
            # The fork server is fine; this start is not for it (refused or failed setup).
            raise ForkServerUnavailable(reply.get("error", "no pid in the reply"))
        return reply["pid"]

    def _send(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    async def _read_line(self) -> bytes:
        line = await asyncio.to_thread(self.process.stdout.readline)
        if not line:
            try:
                status = await asyncio.to_thread(self.process.wait, 5)
            except subprocess.TimeoutExpired:
                status = None
            raise ForkServerUnavailable(f"it exited (status {status})")
        return line

    def discard(self) -> None:
        """Forget a failed fork server: kill it (its idle child dies with it). Servers it
        forked carry on; the stdout pipe closes once a pending read sees its end. One
        that never got ready (a broken environment) is not tried again for a while;
        one that died after it was ready is started again at the next request."""
        if self.ready is None:
            self.failed_at = time.monotonic()
        process, self.process, self.ready = self.process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(OSError):
            process.stdin.close()

    def close(self) -> None:
        """End the fork server: EOF on its stdin; running servers are not touched."""
        process, self.process = self.process, None
        if process is not None:
            process.stdin.close()


def describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no reply in time"
    return str(error) or type(error).__name__


_shared: dict[tuple, ForkServer] = {}


def shared_fork_server(command=DEFAULT_COMMAND) -> ForkServer:
    """The hub process's fork server for ``command`` (created, not started)."""
    key = tuple(command)
    if key not in _shared:
        _shared[key] = ForkServer(command)
    return _shared[key]


def start_early(command=DEFAULT_COMMAND) -> None:
    """Start the hub's fork server now, while the hub loads: for the one-machine config."""
    shared_fork_server(command).start()
