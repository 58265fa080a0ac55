"""The one-machine spawner: each server is a local process in its own workspace."""

import asyncio
import html
import os
import pwd
import sys
import uuid
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool, Float, Int, List, TraitError, Unicode, default, validate

from codepilot_contracts.defaults import PREVIEW_PORT
from codepilot_contracts.namespaces import SandboxEntry
from codepilot_contracts.restoreprogress import RESTORE_COMMAND, parse_line

from ..onemachine import netns
from ..onemachine.busyservers import BusyPolicy, watch_busy_servers
from ..onemachine.cgroups import (
    HUBS_PARENT,
    Limits,
    ServerCgroup,
    describe_memory,
    machine_hierarchy,
)
from ..onemachine.forkclient import (
    DEFAULT_COMMAND,
    ForkServerUnavailable,
    fork_request,
    shared_fork_server,
)
from ..onemachine.processes import TAG_VARIABLE, end_tagged_processes
from ..onemachine.sandbox import Sandbox
from ..onemachine.unixusers import COMMENT_PREFIX, ensure_unix_user, remove_unix_user, unix_username
from ..onemachine.workspaces import (
    home_path,
    needs_machine_tmp,
    prepare_user_dirs,
    remove_tree,
    tmp_path,
    workspace_path,
)
from ..s3settings import STS
from ..upstream_api.jupyterhub import adopt_process, adopted_pid, forget_process, switch_user
from .core import CodePilotSpawnerMixin, restore_progress_event
from .previewroute import PreviewRoute
from .progresslog import ProgressLog
from .starterform import chosen_starter, spawner_starters, starter_form

# Where Code Pilot's code is: a server imports from it (an editable install's checkout).
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the codepilot_spawner package
# The standard AWS settings, which servers that keep workspaces in S3 need; the keys are
# passed only in static mode: in sts mode servers get theirs from the credential broker.
AWS_KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
AWS_VARIABLES = [
    *AWS_KEYS,
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
]


class CodePilotLocalSpawner(CodePilotSpawnerMixin, LocalProcessSpawner):
    """Starts a user server as a local process, as its own Unix user when the hub is root.

    The server's working directory is its workspace,
    ``<data_dir>/workspaces/<user>/<server or "default">`` (mode 0700). As root (and with
    ``isolate_servers``), it runs in a network namespace of its own, its app on port 3000
    as in a pod, with cgroup limits on memory, CPU and processes; otherwise it gets a free
    preview port on the machine. Stopping it ends every process its terminals started.
    Servers outlive the hub: a restarted hub finds them through the state kept here.
    """

    data_dir = Unicode(
        help="""Directory that holds workspaces (``workspaces/``) and the homes of user
        servers (``homes/``). Set by the one-machine hub config from CODEPILOT_DATA_DIR.""",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self):
        return str(Path(".codepilot").resolve())

    system_path = Unicode(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        help="""PATH of a server that runs as a Unix user of its own, after the bin folder
        of the hub's Python environment: built from scratch rather than inherited, so no
        folder of the hub's user (such as root's pyenv or cargo) appears in it.""",
    ).tag(config=True)

    isolate_users = Bool(
        True,
        help="""When the hub runs as root, run each user's server as a Unix user of its own
        (created at first spawn), so users cannot read each other's workspaces. Has no
        effect when the hub is not root: then every server runs as the hub's user.""",
    ).tag(config=True)

    unix_user_prefix = Unicode(
        "cp-",
        help="""Prefix of the Unix accounts created for hub users (``alice`` ->
        ``cp-alice``). An account belongs to the data dir whose home it has: two hubs on one
        machine need prefixes of their own (the one-machine config sets it from
        CODEPILOT_ACCOUNT_PREFIX).""",
    ).tag(config=True)

    process_grace = Float(
        5.0,
        help="""Seconds that processes left over by a stopped server (dev servers started
        from its terminals) get between SIGTERM and SIGKILL.""",
    ).tag(config=True)

    isolate_servers = Bool(
        True,
        help="""When the hub runs as root, give each server what a pod gets: a network
        namespace of its own (its app on ``namespace_preview_port``, out of reach of other
        users) and cgroup limits (``mem_limit``, ``cpu_limit``, ``pids_limit``). Has no
        effect when the hub is not root.""",
    ).tag(config=True)

    secure_cookies = Bool(
        False,
        help="""Whether browsers reach servers over https (the one-machine hub with
        ``CODEPILOT_SSL_CERT``): each server's XSRF cookie, which jupyter-server sets
        itself, is then marked Secure too (JupyterHub marks its login cookie).""",
    ).tag(config=True)

    loopback_ports = List(
        Int(),
        help="""Ports of the host's loopback that servers in a namespace may reach:
        ``127.0.0.1:<port>`` inside the namespace is forwarded to the host's
        ``127.0.0.1:<port>``, so the hub API, credential broker, preview API and a
        loopback S3 endpoint keep their URLs. Every other host port is closed to them.
        The one-machine config fills it.""",
    ).tag(config=True)

    namespace_subnet = Unicode(
        "172.30.0.0/16",
        help="""Private IPv4 range cut into one /30 per isolated server (host side .1,
        server .2). Blocks are claimed machine-wide, so hubs on one machine may share it.
        Pick a range the machine's own network does not use.""",
    ).tag(config=True)

    namespace_preview_port = Int(
        PREVIEW_PORT,
        help="""The preview port (``PORT``) of a server in a namespace of its own: the same
        for every server, as in pods.""",
    ).tag(config=True)

    pids_limit = Int(
        None,
        allow_none=True,
        help="""Most processes and threads one isolated server may have at once (cgroup
        ``pids.max``); a fork bomb stops there. None: no limit.""",
    ).tag(config=True)

    cgroup_parent = Unicode(
        HUBS_PARENT,
        help="""cgroup under which each hub keeps ``<hub key>/<server>`` groups. `make
        down` sweeps what a crash left under the default one only.""",
    ).tag(config=True)

    busy_cpu_weight = Float(
        BusyPolicy.busy_weight,
        help="""CPU weight of an isolated server that has wanted half a CPU over a second
        (an install, a build), as a fraction of the others' until it is quiet again: it
        still gets all the CPU nobody else wants, but a classmate's keystroke waiting for
        the CPU goes first. 1: every server keeps the same weight.""",
    ).tag(config=True)

    @validate("busy_cpu_weight")
    def _weight_is_a_fraction(self, proposal):
        if not 0 < proposal["value"] <= 1:
            raise TraitError("busy_cpu_weight is a fraction of the normal weight: (0, 1]")
        return proposal["value"]

    fork_server = Bool(
        True,
        help="""Start servers from the hub's fork server, a process that has imported the
        server stack once and forks a child per start (joining the server's cgroup and
        namespace, then dropping to its user, before any of its code runs), instead of
        a new Python process each time. When the fork server is down or cannot start a
        server, that server starts as a plain process and the hub log says why.""",
    ).tag(config=True)

    fork_server_command = List(
        Unicode(),
        default_value=list(DEFAULT_COMMAND),
        help="""Command of the fork server: the hub's Python running
        ``server_extension.startup.forkserver``. It must have the same server stack as ``cmd``.""",
    ).tag(config=True)

    @default("options_form")
    def _default_options_form(self):
        def form(spawner):
            notice = stop_notice(spawner.stop_reason)
            if spawner.workspace.is_dir():
                # A restart: its files are there and a starter would change nothing.
                # With no notice to show, no form: JupyterHub starts it at once.
                return notice
            offered, default = spawner_starters(spawner)
            return notice + starter_form(offered, spawner.starter or default)

        return form

    @default("poll_interval")
    def _default_poll_interval(self):
        # A server over its memory limit is found and stopped at the next poll.
        return 10

    @default("apply_user_options")
    def _default_apply_user_options(self):
        def apply_starter(spawner, user_options):
            spawner.starter = chosen_starter(user_options, *spawner_starters(spawner))

        return apply_starter

    @default("cmd")
    def _default_cmd(self):
        # jupyterhub-singleuser of the hub's own environment, whatever PATH says, with
        # what a server does not use at start deferred (server_extension.startup.singleuser).
        return [sys.executable, "-P", "-m", "server_extension.startup.singleuser"]

    @default("restore_command")
    def _default_restore_command(self):
        # The hub's own environment, as for the server (cmd); --root is added per start.
        return [sys.executable, *RESTORE_COMMAND]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # One value per form field. JupyterHub maps the string "simple" to its form
        # parser when the trait is set; a default would stay the bare string.
        if not self.trait_has_value("options_from_form"):
            self.options_from_form = "simple"

    preview_port = 0
    kept_reserved_ports: tuple[int, ...] = ()
    sandbox: Sandbox | None = None
    stop_reason = ""  # why the last run ended, when it did not end by a stop

    @property
    def isolated(self) -> bool:
        return os.geteuid() == 0 and self.isolate_users

    @property
    def sandboxed(self) -> bool:
        return self.isolated and self.isolate_servers

    @property
    def process_tag(self) -> str:
        return self.sandbox.process_tag if self.sandbox else ""

    @property
    def preview_route(self) -> PreviewRoute | None:
        """Where the preview gateway reaches this run's app: on loopback, in the server's
        namespace when it has one. The process tag is new at every run: the start id."""
        if not self.sandbox:
            return None
        return PreviewRoute(
            start_id=self.sandbox.process_tag,
            app_port=self.preview_port,
            netns=self.sandbox.netns,
            # The server's own port, and those its namespace forwards to the hub's loopback
            # (with those of the state, should a restarted hub not know them).
            reserved_ports=tuple(
                sorted({self.port, *self.loopback_ports, *self.kept_reserved_ports} - {0})
            ),
        )

    @property
    def hub_key(self) -> str:
        return netns.hub_key(self.data_dir)

    @property
    def limits(self) -> Limits:
        return Limits(self.mem_limit, self.cpu_limit, self.pids_limit)

    @property
    def unix_name(self) -> str:
        return unix_username(self.user.name, self.unix_user_prefix)

    @property
    def workspace(self) -> Path:
        return workspace_path(Path(self.data_dir), self.user.name, self.name)

    @property
    def home(self) -> Path:
        return home_path(Path(self.data_dir), self.user.name)

    # --- state kept across hub restarts -------------------------------------------

    def load_state(self, state):
        super().load_state(state)
        route = PreviewRoute.from_state(state)
        self.preview_port = route.app_port if route else 0
        self.kept_reserved_ports = route.reserved_ports if route else ()
        self.sandbox = Sandbox.from_state(state)
        self.stop_reason = state.get("stop_reason", "")
        if self.sandbox and self.sandbox.cgroup:
            self._watch_busy(self.sandbox.cgroup.hierarchy)  # servers a restarted hub kept

    def get_state(self):
        state = super().get_state()
        if self.sandbox:
            state.update(self.sandbox.to_state())
            # Read by the preview gateway (hub API, admin:server_state).
            state.update(self.preview_route.to_state())
        if self.stop_reason:
            state["stop_reason"] = self.stop_reason
        return state

    def clear_state(self):
        # stop_reason outlives the run it explains.
        super().clear_state()
        self.preview_port = 0
        self.kept_reserved_ports = ()
        self.sandbox = None

    # --- start and stop ---------------------------------------------------------------

    async def start(self):
        self.check_name()
        self._progress_log = ProgressLog()
        try:
            self._progress_log.report(10, "Preparing your workspace")
            if self.sandbox:  # left over from a run the hub did not see end
                await self.sandbox.remove(self.process_grace, self.log)
            self.stop_reason = ""
            if self.port == 0:
                self.port = random_port()
            # The namespace is built while the workspace is prepared.
            sandbox_task = asyncio.ensure_future(self._create_sandbox())
            try:
                await self._prepare_workspace()
            finally:
                self.sandbox = await sandbox_task
            self.notebook_dir = str(self.workspace)
            await self._restore_workspace()
            self._progress_log.report(50, "Starting JupyterLab")
            address = await self._start_process()
            self._progress_log.report(80, "JupyterLab started, waiting for it to answer")
            return address
        except BaseException:
            if self.sandbox:
                await self.sandbox.remove(self.process_grace, self.log)
                self.sandbox = None
            raise
        finally:
            self._progress_log.finish()

    async def _start_process(self):
        """Fork the server from the fork server, or else exec it as LocalProcessSpawner does."""
        if self.fork_server and not self.shell_cmd and not self.popen_kwargs:
            try:
                return await self._fork_process()
            except ForkServerUnavailable as error:
                self.log.warning(
                    "Fork server could not start %s (%s): starting it as a plain process",
                    self.server_label,
                    error,
                )
                # A child forked before the failure must not run beside the plain one.
                await end_tagged_processes(self.process_tag, grace=0)
        return await super().start()

    async def _fork_process(self):
        account = None
        if self.isolated:
            account = await asyncio.to_thread(pwd.getpwnam, self.unix_name)
        request = fork_request(
            [*self.cmd, *self.get_args()],
            self.get_env(),
            self.workspace,
            account,
            self.sandbox_entry,
        )
        self.log.info("Spawning %s from the fork server", self.server_label)
        pid = await shared_fork_server(self.fork_server_command).spawn(request)
        adopt_process(self, pid)
        return (self.ip or "127.0.0.1", self.port)

    def _watch_busy(self, hierarchy) -> None:
        """Start the hub's watcher of busy servers (once), where a loop runs."""
        if self.busy_cpu_weight >= 1:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # state read outside the hub's loop: the next start watches
        policy = BusyPolicy(busy_weight=self.busy_cpu_weight)
        parent = f"{self.cgroup_parent}/{self.hub_key}"
        watch_busy_servers(hierarchy, parent, policy, self.log)

    async def _create_sandbox(self) -> Sandbox:
        """The process tag and, as root, a network namespace and a cgroup for this run."""
        tag = uuid.uuid4().hex
        if not self.sandboxed:
            self.preview_port = random_port()
            return Sandbox(tag)
        hierarchy = await asyncio.to_thread(machine_hierarchy)
        if hierarchy is None:
            raise RuntimeError("no cgroup hierarchy with memory, cpu and pids on this machine")
        hub = self.hub_key
        await netns.ensure_hub_rules(hub, self.namespace_subnet, self.loopback_ports)
        network = await asyncio.to_thread(
            netns.claim_slot, hub, self.namespace_subnet, f"{self.user.name}/{self.name}"
        )
        sandbox = Sandbox(tag, network)
        try:
            await netns.create_namespace(network, self.loopback_ports, self.port)
            cgroup = ServerCgroup(hierarchy, f"{self.cgroup_parent}/{hub}/{network.name}")
            sandbox.cgroup = cgroup
            await asyncio.to_thread(cgroup.create, self.limits)
            self._watch_busy(hierarchy)
        except BaseException:
            await sandbox.remove(self.process_grace, self.log)
            raise
        self.ip = network.address
        self.preview_port = self.namespace_preview_port
        return sandbox

    async def progress(self):
        progress_log = getattr(self, "_progress_log", None)
        if progress_log is None:
            return
        async for event in progress_log.follow():
            yield event

    async def poll(self):
        sandbox = self.sandbox
        if sandbox is None:
            return await super().poll()
        if sandbox.network:
            # After a hub restart, before routing its servers again.
            await netns.ensure_hub_rules(self.hub_key, self.namespace_subnet, self.loopback_ports)
        pid = adopted_pid(self)
        if pid and not sandbox.owns(pid):
            forget_process(self)  # that pid is another process now: ours is gone
        status = await super().poll()
        if status is None and sandbox.cgroup and sandbox.cgroup.oom_kills():
            limit = describe_memory(self.limits.memory_bytes or 0)
            self.stop_reason = f"Stopped: it went over its memory limit ({limit})."
            self.log.warning("%s went over its memory limit: stopping it", self.server_label)
            await sandbox.remove(self.process_grace, self.log)
            status = await super().poll()
        if status is not None:
            if not self.stop_reason and not getattr(self, "_stopping", False):
                self.stop_reason = f"Stopped: JupyterLab exited (status {status})."
            await sandbox.remove(self.process_grace, self.log)
            if self.sandbox is sandbox:
                self.clear_state()
        return status

    async def stop(self, now=False):
        sandbox = self.sandbox
        self._stopping = True
        try:
            await super().stop(now=now)
            if sandbox:
                await sandbox.remove(self.process_grace, self.log)
        finally:
            self._stopping = False

    async def rename(self, old_name, new_name):
        await super().rename(old_name, new_name)  # refuses a route's name
        # The workspace directory is keyed by server name; keep it with the server.
        root = Path(self.data_dir)
        old = workspace_path(root, self.user.name, old_name)
        new = workspace_path(root, self.user.name, new_name)
        if old.exists():
            if new.exists():
                raise ValueError(f"a workspace for server {new_name!r} already exists")
            await asyncio.to_thread(old.rename, new)

    async def delete_forever(self):
        """The project, or the whole user, is deleted from the hub: their files go too.

        JupyterHub deletes the default server's spawner only with its user, so that one
        removes every workspace of the user, their home and their Unix account (when it
        is this data dir's).
        The S3 copy stays (see README, Removing a student).
        """
        if self.name:
            await asyncio.to_thread(remove_tree, self.workspace)
            self.log.info("Removed the workspace of %s", self.server_label)
            return
        await asyncio.to_thread(remove_tree, self.workspace.parent)
        await asyncio.to_thread(remove_tree, self.home)
        await asyncio.to_thread(remove_tree, tmp_path(Path(self.data_dir), self.user.name))
        self.log.info("Removed the workspaces and home of %s", self.user.name)
        if self.isolated:
            await self._remove_account()

    async def _remove_account(self):
        """Delete the user's Unix account, unless another data dir's hub (or the system)
        has one of that name: that one stays."""
        problem = await remove_unix_user(self.unix_name, str(self.home))
        if problem:
            self.log.warning(
                "Left the Unix account %s of %s: %s", self.unix_name, self.user.name, problem
            )
        else:
            self.log.info("Removed the Unix account of %s", self.user.name)

    async def _prepare_workspace(self):
        data_dir = Path(self.data_dir)
        if self.isolated:
            self._progress_log.report(20, "Setting up your account")
            account = await ensure_unix_user(
                self.unix_name, str(self.home), comment=COMMENT_PREFIX + self.user.name
            )
            uid, gid = account.pw_uid, account.pw_gid
        else:
            if os.geteuid() == 0:
                self.log.warning(
                    "isolate_users is off: %s runs as root, with access to every workspace",
                    self.server_label,
                )
            else:
                self.log.warning(
                    "The hub is not running as root: %s runs as the hub's user, and users "
                    "are NOT isolated from each other's workspaces",
                    self.server_label,
                )
            uid = gid = None

        await asyncio.to_thread(prepare_user_dirs, data_dir, self.user.name, self.name, uid, gid)

    # --- what the process gets ---------------------------------------------------------

    @property
    def private_tmp(self) -> str:
        """The folder an isolated server sees as /tmp; "" when not isolated, or when
        something the server needs lies under /tmp (a /tmp of its own would hide it:
        then the folder is its TMPDIR instead)."""
        if not self.isolated or needs_machine_tmp(self.data_dir, sys.prefix, PACKAGE_DIR):
            return ""
        return str(tmp_path(Path(self.data_dir), self.user.name))

    @property
    def sandbox_entry(self) -> SandboxEntry:
        """How this server's processes get into its sandbox, as the fork server's child
        and a plain start's ``preexec_fn`` alike."""
        if self.sandbox is None:
            return SandboxEntry(private_mounts=self.isolated, tmp_dir=self.private_tmp)
        return self.sandbox.entry(self.isolated, self.private_tmp)

    def make_preexec_fn(self, name):
        workspace = str(self.workspace)
        become_user = switch_user(self.unix_name) if self.isolated else None
        sandbox_entry = self.sandbox_entry

        def preexec():
            sandbox_entry.enter()  # as root still
            if become_user is not None:
                become_user()
            os.chdir(workspace)

        return preexec

    def user_env(self, env):
        env["USER"] = self.unix_name if self.isolated else env.get("USER", "")
        env["HOME"] = str(self.home)
        env["SHELL"] = "/bin/bash"
        # Terminals find the environment's python, pip and jupyter first. An isolated
        # server's PATH is built anew: the hub's own (root's pyenv, cargo) is not theirs.
        bin_dir = str(Path(sys.executable).parent)
        rest = self.system_path if self.isolated else env.get("PATH", os.defpath)
        env["PATH"] = os.pathsep.join([bin_dir, rest])
        if self.isolated and not self.private_tmp:
            env["TMPDIR"] = str(tmp_path(Path(self.data_dir), self.user.name))
        return env

    async def _restore_workspace(self):
        """Fill the workspace from S3, or from the chosen starter, before the server starts.

        Runs ``python -m server_extension.sync restore`` as the server's user, the command
        a pod's init container runs, and turns its progress lines into progress events.
        """
        if not self.needs_restore:
            return
        # The chosen starter reaches the command as CODEPILOT_STARTER, like the server.
        command = [*self.restore_command, "--root", str(self.workspace)]
        self._progress_log.report(25, "Restoring workspace")
        process = await asyncio.create_subprocess_exec(
            *command,
            env=self.get_env(),
            preexec_fn=self.make_preexec_fn(self.user.name),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,  # one stream: no pipe can fill up unread
        )
        error_message = last_line = ""
        async for line in process.stdout:
            record = parse_line(line)
            event = restore_progress_event(record, 25, 45)
            if event is not None:
                self._progress_log.report(event["progress"], event["message"])
            elif record.get("event") == "error":
                error_message = record.get("message", "")
            elif record.get("event") == "done":
                self._log_restore_warnings(record)
            elif not record and line.strip():
                last_line = line.decode(errors="replace").strip()
        if await process.wait() != 0:
            reason = error_message or last_line or "no output"
            raise RuntimeError(f"Could not restore the workspace: {reason}")

    def _log_restore_warnings(self, done: dict) -> None:
        if done.get("skipped"):
            self.log.warning(
                "%s: restore skipped what no file can hold: %s",
                self.server_label,
                ", ".join(map(repr, done["skipped"])),
            )
        if done.get("conflicts"):
            self.log.warning(
                "%s: changed both locally and in S3, local versions kept beside: %s",
                self.server_label,
                ", ".join(map(repr, done["conflicts"].values())),
            )

    def get_env(self):
        env = super().get_env()
        env.update(self.codepilot_env())
        if self.s3 and self.s3.bucket:
            passed = AWS_VARIABLES
            if self.s3.mode == STS:
                passed = [name for name in AWS_VARIABLES if name not in AWS_KEYS]
            # In static mode servers use the hub's AWS keys: every user can reach the
            # whole bucket (see README, Security).
            env.update({name: os.environ[name] for name in passed if name in os.environ})
        env[TAG_VARIABLE] = self.process_tag
        return env

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0 and not self.isolated:
            args = [*args, "--ServerApp.allow_root=True"]
        if self.secure_cookies:
            args = [*args, secure_xsrf_cookie_arg(self.server.base_url)]
        return args


def secure_xsrf_cookie_arg(base_url: str) -> str:
    """jupyter-server's XSRF cookie Secure, on the server's own path as by default (so a
    user's projects on one host keep a cookie each)."""
    kwargs = {"secure": True, "path": base_url}
    return f"--ServerApp.tornado_settings={ {'xsrf_cookie_kwargs': kwargs}!r}"


def stop_notice(reason: str) -> str:
    """The spawn page's note on why the last run ended, when it did not end by a stop."""
    if not reason:
        return ""
    return f'<div class="alert alert-warning" role="alert">{html.escape(reason)}</div>'
