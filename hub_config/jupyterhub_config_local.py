# JupyterHub config for one machine: `make up` (python -m codepilot_spawner.onemachine.launcher).
# Every setting comes from a CODEPILOT_* variable, as the launcher resolved it; see the
# README's configuration table.
import os

from jupyterhub.utils import random_port, subdomain_hook_idna

from codepilot_contracts.env import STARTERS_DIR
from codepilot_contracts.servernames import RESERVED_NAMES
from codepilot_contracts.starters import PACKAGED_STARTERS
from codepilot_spawner.classroom import groups as classroom
from codepilot_spawner.classroom.login import ClassroomPasswordAuthenticator
from codepilot_spawner.onemachine.forkclient import DEFAULT_COMMAND, start_early
from codepilot_spawner.onemachine.launcher import LOGS
from codepilot_spawner.onemachine.passwords import decide
from codepilot_spawner.onemachine.settings import (
    REPO_ROOT,
    IsolationSettings,
    OneMachineSettings,
    automation_service,
    idle_culling,
    server_loopback_ports,
    spawn_throttle,
)
from codepilot_spawner.onemachine.stopall import HUB_DATABASE, HUB_PID_FILE, PROXY_PID_FILE
from codepilot_spawner.services import broker
from codepilot_spawner.services.classpage import hubservice as class_page
from codepilot_spawner.services.declaration import merge_roles
from codepilot_spawner.services.preview import hubservice as preview_service
from codepilot_spawner.services.servicelife import logged, with_hub_pid, with_log_files
from codepilot_spawner.spawners.projectlimits import ProjectLimit
from codepilot_spawner.spawners.starterform import class_starters_dir

c = get_config()  # noqa: F821 (provided by JupyterHub)
settings = OneMachineSettings.for_hub()
data_dir = settings.data_dir  # absolute, made by the launcher with its logs folder
logs_dir = data_dir / LOGS
# Exactly the passwords the launcher printed and kept: none is generated here.
passwords = decide(data_dir, teachers=bool(settings.teachers), generate=False)

# The hub's log goes to its terminal and to <data dir>/logs/hub.log.
c.JupyterHub.logging_config = {
    "formatters": {
        "file": {
            "()": "tornado.log.LogFormatter",
            "color": False,
            "fmt": "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s %(module)s:%(lineno)d]"
            " %(message)s",
            "datefmt": "%Y-%m-%d %H:%M:%S",
        }
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": str(logs_dir / "hub.log"),
            "formatter": "file",
        }
    },
    "loggers": {"JupyterHub": {"handlers": ["console", "file"]}},
}

c.JupyterHub.ip = settings.ip
# Each user's servers on an origin of its own (<user>.<hub host>), so a student's
# JupyterLab that a teacher opens cannot act on the hub as the teacher.
c.JupyterHub.subdomain_host = settings.subdomain_host
c.JupyterHub.subdomain_hook = subdomain_hook_idna
c.JupyterHub.template_vars = {
    "codepilot_hub_origin": settings.subdomain_host,
    # The home page says a reserved project name is refused as it is typed.
    "codepilot_reserved_names": sorted(RESERVED_NAMES),
    # The login form's "This is my first time here" box, when new names may join.
    "codepilot_new_accounts": settings.allow_all,
}
# Over HTTPS the hub's login cookie is a __Host- cookie: a user's host may set cookies for
# the hub's domain, but none of that name, so a student's IDE cannot sign its viewer in
# to the hub as the student (plain HTTP cannot stop that: README, Security).
c.JupyterHub.cookie_host_prefix_enabled = settings.subdomain_host.startswith("https://")
c.JupyterHub.port = settings.port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings.hub_port
c.JupyterHub.db_url = f"sqlite:///{data_dir / HUB_DATABASE}"
# After a `git pull` that brings a newer JupyterHub: SQLite is copied aside, then upgraded.
c.JupyterHub.upgrade_db = True
c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(data_dir / HUB_PID_FILE)

# HTTPS (CODEPILOT_SSL_CERT/_KEY, checked by the launcher): the proxy serves the hub and
# every user's host with it; JupyterHub marks its login cookies Secure by itself.
if settings.tls:
    c.JupyterHub.ssl_cert = str(settings.tls.cert)
    c.JupyterHub.ssl_key = str(settings.tls.key)
    c.JupyterHub.tornado_settings = {"xsrf_cookie_kwargs": {"secure": True}}  # its _xsrf too
    c.CodePilotLocalSpawner.secure_cookies = True  # and the servers' _xsrf

c.ConfigurableHTTPProxy.command = logged(
    [str(REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy")],
    logs_dir / "proxy.log",
)
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = str(data_dir / PROXY_PID_FILE)

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = passwords.student
c.SharedPasswordAuthenticator.admin_password = passwords.admin
c.Authenticator.admin_users = {settings.admin_user}
c.Authenticator.allow_all = settings.allow_all
c.Authenticator.allow_existing_users = True
if settings.preview_parent_user:  # its IDE's host would hold every preview's
    c.Authenticator.blocked_users = {settings.preview_parent_user}

c.JupyterHub.spawner_class = "codepilot_spawner.CodePilotLocalSpawner"
c.Spawner.environment = {}
c.CodePilotLocalSpawner.data_dir = str(data_dir)
# Accounts belong to this data dir: a second hub on the machine needs a prefix of its own.
c.CodePilotLocalSpawner.unix_user_prefix = settings.account_prefix
c.CodePilotLocalSpawner.codepilot_settings = settings.server_settings
c.CodePilotLocalSpawner.s3 = settings.s3
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = ProjectLimit(settings.named_server_limit)
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 120

# Servers outlive the hub, as pods do: a restarted hub finds them again. `make down`
# (python -m codepilot_spawner.onemachine.launcher stop-all) ends them all.
c.JupyterHub.cleanup_servers = False
# As root: a network namespace and cgroup limits per server (see README, Security).
isolation = IsolationSettings.from_env()
c.CodePilotLocalSpawner.isolate_servers = isolation.enabled
c.CodePilotLocalSpawner.mem_limit = isolation.mem_limit
c.CodePilotLocalSpawner.cpu_limit = isolation.cpu_limit
c.CodePilotLocalSpawner.pids_limit = isolation.pids_limit
c.CodePilotLocalSpawner.loopback_ports = server_loopback_ports(settings)

services, roles = [], []
if settings.admin_token:
    automation_service(settings.admin_token).add_to(services, roles)

# With CODEPILOT_S3_ROLE_ARN (sts): the broker mints STS credentials scoped to each
# user's prefix, and servers never see the hub's own keys.
wiring = broker.broker_wiring(settings.s3, f"http://127.0.0.1:{settings.broker_port}")
if wiring:
    wiring.apply(c, c.CodePilotLocalSpawner, services, roles)
# Previews on origins of their own (<label>.<preview domain>:<preview port>), served by
# the preview gateway; viewers sign in through the hub.
gateway = preview_service.hub_service(
    f"http://127.0.0.1:{settings.preview_api_port}",
    settings.ip,
    settings.preview_port,
    [
        f"--PreviewGatewayApp.domain={settings.preview_domain}",
        f"--PreviewGatewayApp.hub_url={settings.url}",
        f"--PreviewGatewayApp.share_levels={list(settings.preview_share_levels)!r}",
        f"--PreviewGatewayApp.state_dir={data_dir / 'preview'}",
        f"--PreviewGatewayApp.scheme={settings.preview_scheme}",
        f"--PreviewGatewayApp.preview_rate={settings.preview_rate}",
        *(
            [
                f"--PreviewGatewayApp.ssl_cert={settings.preview_tls.cert}",
                f"--PreviewGatewayApp.ssl_key={settings.preview_tls.key}",
            ]
            if settings.preview_tls
            else []
        ),
    ],
)
gateway.add_to(services, roles)
c.CodePilotLocalSpawner.preview_domain = settings.preview_domain
c.CodePilotLocalSpawner.preview_scheme = settings.preview_scheme
c.CodePilotLocalSpawner.preview_origin_port = settings.preview_port
c.CodePilotLocalSpawner.preview_api_url = (
    f"http://127.0.0.1:{settings.preview_api_port}{preview_service.SERVICE_PREFIX}"
)

# --- classes: teachers, students, the class page, idle culling (see README, Classes) ---
# Teachers log in with a password of their own: the students' one opens any other name.
c.JupyterHub.authenticator_class = ClassroomPasswordAuthenticator
c.ClassroomPasswordAuthenticator.teacher_users = set(settings.teachers)
# A mistyped name is told so, not made a new empty account (the form's box says "new").
c.ClassroomPasswordAuthenticator.confirm_new_accounts = settings.allow_all
if settings.teachers:
    c.ClassroomPasswordAuthenticator.teacher_password = passwords.teacher
c.JupyterHub.load_groups = classroom.one_machine_groups(list(settings.teachers))
c.Authenticator.post_auth_hook = classroom.make_login_hook(settings.teachers, {settings.admin_user})
roles.extend(class_page.classroom_roles())
# A class's own starters: folders an admin copies to <data dir>/templates/<name>/.
starters_dir = class_starters_dir(data_dir)
starters_dir.mkdir(exist_ok=True)
starters_dir.chmod(0o755)  # servers run as their students' accounts and copy from here
c.Spawner.environment[STARTERS_DIR] = str(starters_dir)
proxy_host = "127.0.0.1" if settings.ip in ("0.0.0.0", "::", "") else settings.ip
# A free loopback port unless one is set: the hub tells the proxy where it is at each start.
class_page_service = class_page.hub_service(
    settings.class_page_port or random_port(),
    [
        f"--ClassPageApp.proxy_url={settings.scheme}://{proxy_host}:{settings.port}",
        f"--ClassPageApp.proxy_ca={settings.tls.cert if settings.tls else ''}",
        f"--ClassPageApp.preview_api_url=http://127.0.0.1:{settings.preview_api_port}"
        f"{preview_service.SERVICE_PREFIX}",
        f"--ClassPageApp.preview_domain={settings.preview_domain}",
        f"--ClassPageApp.preview_port={settings.preview_port}",
        f"--ClassPageApp.preview_scheme={settings.preview_scheme}",
        f"--ClassPageApp.data_dir={data_dir}",
        f"--ClassPageApp.subdomains={settings.subdomains}",
        f"--ClassPageApp.configured_starters={list(PACKAGED_STARTERS)!r}",
    ],
)
class_page_service.add_to(services, roles)
# Teachers land on the class page, linked as "Class" from every hub page.
c.JupyterHub.default_url = class_page.teachers_land_on_class_page
c.JupyterHub.template_paths = [str(class_page.HUB_TEMPLATES)]
culling = idle_culling(settings.cull_idle)
if culling:
    culler, activity_interval = culling
    culler.add_to(services, roles)
    # Activity is what servers report (terminal traffic, JupyterLab's API calls, kernels)
    # and preview views (the gateway reports them); bare requests through the proxy,
    # such as the class page reading sync state, keep no server up.
    c.JupyterHub.last_activity_interval = 0
    c.Spawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] = str(activity_interval)

# A class logs in at once: pending starts scale with the machine's cores.
for name, value in spawn_throttle(os.cpu_count()).items():
    setattr(c.JupyterHub, name, value)

c.JupyterHub.services = with_log_files(with_hub_pid(services, os.getpid()), logs_dir)
c.JupyterHub.load_roles = merge_roles(roles)  # services each extend the "user" role

# The fork server and the servers it forks log to <data dir>/logs/servers.log (its
# stdout is the hub's pipe to it).
c.CodePilotLocalSpawner.fork_server_command = logged(
    list(DEFAULT_COMMAND), logs_dir / "servers.log", stdout=False
)

# Local extra settings (not in the repository) go last, so they win.
extra = os.environ.get("CODEPILOT_HUB_EXTRA_CONFIG")
if extra:
    load_subconfig(extra)  # noqa: F821 (provided by traitlets)

# The fork server starts while the hub loads, so no start waits for its imports.
if c.JupyterHub.spawner_class == "codepilot_spawner.CodePilotLocalSpawner" and (
    c.CodePilotLocalSpawner.get("fork_server", True)
):
    start_early(c.CodePilotLocalSpawner.fork_server_command)
