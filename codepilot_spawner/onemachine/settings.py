"""The one-machine hub's settings, read from ``CODEPILOT_*`` variables.

The launcher (``codepilot_spawner.onemachine.launcher``, ``make up``) resolves them once and starts
JupyterHub with ``hub_config/jupyterhub_config_local.py``, which applies them to the hub
(``OneMachineSettings.for_hub``): it gets the data dir as an absolute path, so it can never
derive a second one from a relative default.
"""

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from codepilot_contracts.defaults import S3_PREFIX, S3_REGION
from codepilot_contracts.env import env_name

from ..classroom.groups import ClassroomError, parse_names
from ..s3settings import STATIC, STS, S3Settings
from ..services import culler
from ..services.declaration import HubService
from ..services.preview.pace import DEFAULT_RATE
from .cgroups import Limits, describe_memory, parse_memory
from .tls import CertificateError, TLSPair, normal_host, read_pair

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = ".codepilot"
DEFAULT_ACCOUNT_PREFIX = "cp-"
# A Unix name's start, short enough to leave room for the user's name (32 in all).
_ACCOUNT_PREFIX = re.compile(r"[a-z_][a-z0-9_-]{0,15}")

AUTOMATION_SCOPES = [
    "admin:users",
    "admin:servers",
    "access:servers",
    "tokens",
    "read:users",
    "list:users",
    "read:metrics",  # the hub's Prometheus metrics: monitoring, the load benchmark
]


# c.CodePilot settings the hub passes on to every user server as they are, from its own
# environment; the S3 settings go through S3Settings (s3_settings).
SERVER_SETTINGS = ["storage", "code_intelligence", "collaboration"]


class SettingsError(ValueError):
    """A CODEPILOT_* variable has a value the hub cannot use."""


def _int(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


@dataclass(frozen=True)
class OneMachineSettings:
    ip: str
    port: int
    hub_port: int
    proxy_api_port: int
    broker_port: int
    data_dir: Path
    admin_user: str
    named_server_limit: int
    allow_all: bool
    admin_token: str | None
    server_settings: dict
    preview_domain: str
    preview_port: int
    preview_api_port: int
    preview_share_levels: tuple[str, ...]

    @classmethod
    def from_env(cls, env=os.environ) -> "OneMachineSettings":
        admin_token = env.get("CODEPILOT_ADMIN_TOKEN") or None
        if admin_token is not None and len(admin_token) < 16:
            raise SettingsError("CODEPILOT_ADMIN_TOKEN must be at least 16 characters")
        settings = cls(
            ip=env.get("CODEPILOT_IP", "127.0.0.1"),
            port=_int(env, "CODEPILOT_PORT", 8000),
            hub_port=_int(env, "CODEPILOT_HUB_PORT", 8081),
            proxy_api_port=_int(env, "CODEPILOT_PROXY_API_PORT", 8001),
            broker_port=_int(env, "CODEPILOT_BROKER_PORT", 8082),
            data_dir=data_dir(env),
            admin_user=env.get("CODEPILOT_ADMIN_USER", "admin"),
            named_server_limit=_int(env, "CODEPILOT_NAMED_SERVER_LIMIT", 5),
            allow_all=env.get("CODEPILOT_ALLOW_ALL", "true").lower() in ("1", "true", "yes"),
            admin_token=admin_token,
            server_settings=server_settings(env),
            account_prefix=account_prefix(env),
            s3=s3_settings(env),
            public_url=public_url(env),
            subdomains=subdomains(env),
            teachers=tuple(teacher_names(env)),
            cull_idle=cull_idle_seconds(env),
            class_page_port=_int(env, "CODEPILOT_CLASS_PAGE_PORT", 0),
            preview_domain=preview_domain(env),
            preview_port=_int(env, "CODEPILOT_PREVIEW_GATEWAY_PORT", 8002),
            preview_api_port=_int(env, "CODEPILOT_PREVIEW_API_PORT", 8083),
            preview_rate=preview_rate(env),
            preview_share_levels=tuple(
                level.strip()
                for level in env.get(
                    "CODEPILOT_PREVIEW_SHARE_LEVELS", "owner,authenticated,public"
                ).split(",")
                if level.strip()
            ),
            **tls_pairs(env),
        )
        problem = uncovered_names(settings)
        if problem:
            raise SettingsError(problem)
        return settings

    @classmethod
    def for_hub(cls, env=os.environ) -> "OneMachineSettings":
        """The settings as the launcher resolved them, for the hub config."""
        data_dir = env.get("CODEPILOT_DATA_DIR", "")
        if not os.path.isabs(data_dir):
            raise SettingsError(
                f"CODEPILOT_DATA_DIR={data_dir!r} is not an absolute path: start the hub with "
                "`make up` (python -m codepilot_spawner.onemachine.launcher), which resolves it"
            )
        return cls.from_env(env)

    public_url: str = ""
    subdomains: bool = True  # CODEPILOT_SUBDOMAINS: each user's servers on a host of its own
    teachers: tuple[str, ...] = ()  # CODEPILOT_TEACHERS: the hub group "teachers"
    cull_idle: int = 3600  # CODEPILOT_CULL_IDLE: seconds idle before a stop; 0 = never
    # CODEPILOT_PREVIEW_RATE: requests a second the gateway forwards to one preview past
    # its burst; 0 = no limit
    preview_rate: int = DEFAULT_RATE
    class_page_port: int = 0  # CODEPILOT_CLASS_PAGE_PORT: the class page's loopback port
    s3: S3Settings | None = None  # CODEPILOT_S3_*: where workspaces live in S3
    # CODEPILOT_ACCOUNT_PREFIX: of the Unix accounts, which belong to this data dir
    account_prefix: str = DEFAULT_ACCOUNT_PREFIX
    tls: TLSPair | None = None  # CODEPILOT_SSL_CERT/_KEY: the proxy serves https
    # CODEPILOT_PREVIEW_SSL_CERT/_KEY, else the hub's pair: the gateway serves https
    preview_tls: TLSPair | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def preview_scheme(self) -> str:
        return "https" if self.preview_tls else "http"

    @property
    def preview_parent_user(self) -> str | None:
        """The user whose host (``<name>.<hub host>``) would hold the preview domain
        (``preview`` for ``preview.localhost``), or None: that IDE could set cookies
        every preview gets, and previews cookies it gets."""
        hub_host = urlsplit(self.subdomain_host).hostname if self.subdomains else None
        if not hub_host or not self.preview_domain.endswith("." + hub_host):
            return None
        return self.preview_domain[: -len(hub_host) - 1].rsplit(".", 1)[-1]

    def listening_ports(self) -> list[tuple[str, str, int]]:
        """(variable, address, port) of every port the hub and its services listen on."""
        ports = [
            ("CODEPILOT_PORT", self.ip, self.port),
            ("CODEPILOT_PREVIEW_GATEWAY_PORT", self.ip, self.preview_port),
            ("CODEPILOT_HUB_PORT", "127.0.0.1", self.hub_port),
            ("CODEPILOT_PROXY_API_PORT", "127.0.0.1", self.proxy_api_port),
            ("CODEPILOT_PREVIEW_API_PORT", "127.0.0.1", self.preview_api_port),
        ]
        if self.s3 and self.s3.mode == STS:  # the broker runs in sts mode only
            ports.append(("CODEPILOT_BROKER_PORT", "127.0.0.1", self.broker_port))
        if self.class_page_port:
            ports.append(("CODEPILOT_CLASS_PAGE_PORT", "127.0.0.1", self.class_page_port))
        return ports

    @property
    def url(self) -> str:
        """Where people open the hub: ``CODEPILOT_PUBLIC_URL``, else ``http://<ip>:<port>``
        (``http://localhost:<port>`` with subdomains: browsers resolve ``*.localhost``;
        ``https`` with a certificate)."""
        if self.public_url:
            return self.public_url
        return f"{self.scheme}://{'localhost' if self.subdomains else self.ip}:{self.port}"

    @property
    def subdomain_host(self) -> str:
        """JupyterHub's ``subdomain_host``: users at ``<user>.<host>``; empty when off."""
        return self.url if self.subdomains else ""


def data_dir(env) -> Path:
    """``CODEPILOT_DATA_DIR`` (default ``.codepilot``) as an absolute path."""
    return Path(env.get("CODEPILOT_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


def teacher_names(env) -> list[str]:
    try:
        return parse_names(env.get("CODEPILOT_TEACHERS", ""))
    except ClassroomError as error:
        raise SettingsError(str(error)) from None


def account_prefix(env) -> str:
    """The prefix of this hub's Unix accounts (``cp-alice``): a second hub on the machine
    needs its own, since an account belongs to one data dir."""
    prefix = env.get("CODEPILOT_ACCOUNT_PREFIX") or DEFAULT_ACCOUNT_PREFIX
    if not _ACCOUNT_PREFIX.fullmatch(prefix):
        raise SettingsError(
            f"CODEPILOT_ACCOUNT_PREFIX={prefix!r} cannot start a Unix user name: use up to "
            "16 lowercase letters, digits, _ and -, not starting with a digit or -, "
            "for example cp2-"
        )
    return prefix


def preview_rate(env) -> int:
    rate = _int(env, "CODEPILOT_PREVIEW_RATE", DEFAULT_RATE)
    if rate < 0:
        raise SettingsError("CODEPILOT_PREVIEW_RATE must be 0 (no limit) or requests a second")
    return rate


def cull_idle_seconds(env) -> int:
    seconds = _int(env, "CODEPILOT_CULL_IDLE", 3600)
    if seconds < 0:
        raise SettingsError("CODEPILOT_CULL_IDLE must be 0 (off) or a number of seconds")
    return seconds


def idle_culling(cull_idle: int, python: str = sys.executable):
    """jupyterhub-idle-culler as on Kubernetes, for a limit of ``cull_idle`` seconds:
    (the ``HubService``, seconds between servers' activity reports), or None when
    culling is off.

    The culler looks every half limit (at most every 10 minutes), and servers report
    their activity every quarter limit (at most every 5 minutes, JupyterHub's default),
    so a server is stopped between one and one and a half limits after its last use.
    """
    if cull_idle <= 0:
        return None
    every = max(5, min(600, cull_idle // 2))
    return culler.hub_service(cull_idle, every, python), max(5, min(300, cull_idle // 4))


# Starts pending at once per CPU core: a forked start costs about 0.2 CPU s, so a core
# finishes 100 within about 20 s (README: How many students a machine holds).
PENDING_STARTS_PER_CPU = 100
# Seconds a student turned away (HTTP 429, Retry-After) waits before trying again: about
# what a pending start takes, not JupyterHub's 30 to 60 s for slower spawners.
SPAWN_RETRY_SECONDS = (5, 15)


def spawn_throttle(cpus: int | None) -> dict:
    """JupyterHub's start throttle for one machine, by trait name: 100 pending starts per
    core instead of 100 for the whole hub, so a class of 200 on two cores starts at once
    rather than half of it being told to come back in up to a minute."""
    return {
        "concurrent_spawn_limit": PENDING_STARTS_PER_CPU * max(1, cpus or 1),
        "spawn_throttle_retry_range": SPAWN_RETRY_SECONDS,
    }


LOOPBACK_IPS = ("127.0.0.1", "localhost", "::1")


def preview_domain(env) -> str:
    """The domain of preview origins: ``*.localhost`` serves this machine's browsers only.

    Served to a network (``CODEPILOT_IP`` not loopback), previews need a domain with
    wildcard DNS, or every preview link would point at the viewer's own machine.
    """
    domain = env.get("CODEPILOT_PREVIEW_DOMAIN", "").strip().strip(".").lower()
    if domain:
        return domain
    ip = env.get("CODEPILOT_IP", "127.0.0.1")
    if not is_loopback(ip):
        raise SettingsError(
            f"CODEPILOT_IP={ip} serves the hub to the network, but previews default to "
            "*.preview.localhost, which only this machine resolves. Set "
            "CODEPILOT_PREVIEW_DOMAIN to a domain whose wildcard record (*.<domain>) points "
            "at this machine, for example CODEPILOT_PREVIEW_DOMAIN=preview.example.org; "
            "see the README, Live preview."
        )
    return "preview.localhost"


def is_loopback(ip: str) -> bool:
    return ip in LOOPBACK_IPS or ip.startswith("127.")


def subdomains(env) -> bool:
    return env.get("CODEPILOT_SUBDOMAINS", "true").lower() in ("1", "true", "yes")


def public_url(env) -> str:
    """``CODEPILOT_PUBLIC_URL``, checked: with subdomains it is JupyterHub's
    ``subdomain_host`` (an origin, no path), and it is required off loopback.

    Served to a network, users' hosts (``<user>.<host>``) need a domain with wildcard
    DNS: ``<user>.localhost`` would point at each viewer's own machine.
    """
    url = env.get("CODEPILOT_PUBLIC_URL", "").strip().rstrip("/")
    if url and env.get("CODEPILOT_SSL_CERT") and urlsplit(url).scheme != "https":
        raise SettingsError(
            f"CODEPILOT_PUBLIC_URL={url} is not https, but with CODEPILOT_SSL_CERT the hub "
            "serves https only: write the URL with https://"
        )
    if not subdomains(env):
        return url
    if url and (urlsplit(url).scheme not in ("http", "https") or urlsplit(url).path):
        raise SettingsError(
            f"CODEPILOT_PUBLIC_URL={url} must be an origin such as "
            "http://hub.example.org:8000 (no path): users' servers are at "
            "<user>.<its host>"
        )
    ip = env.get("CODEPILOT_IP", "127.0.0.1")
    if not url and not is_loopback(ip):
        raise SettingsError(
            f"CODEPILOT_IP={ip} serves the hub to the network, but users' servers default "
            "to <user>.localhost, which only this machine resolves. Set "
            "CODEPILOT_PUBLIC_URL to the hub's URL on a host whose wildcard record "
            "(*.<host>) points at this machine, for example "
            "CODEPILOT_PUBLIC_URL=http://hub.example.org:8000; see the README, "
            "Running a class on one machine."
        )
    return url


def tls_pairs(env) -> dict:
    """``tls`` and ``preview_tls``: the hub's pair, and the previews' own or the hub's."""
    try:
        hub = read_pair(env, "CODEPILOT_SSL_CERT", "CODEPILOT_SSL_KEY")
        previews = read_pair(env, "CODEPILOT_PREVIEW_SSL_CERT", "CODEPILOT_PREVIEW_SSL_KEY")
    except CertificateError as error:
        raise SettingsError(str(error)) from None
    if previews and not hub:
        raise SettingsError(
            "CODEPILOT_PREVIEW_SSL_CERT is set but CODEPILOT_SSL_CERT is not: viewers sign "
            "in to previews at the hub, so the hub needs https too"
        )
    return {"tls": hub, "preview_tls": previews or hub}


def uncovered_names(settings: OneMachineSettings) -> str:
    """Why a certificate does not cover a name browsers will ask it for, or ""."""
    if not settings.tls:
        return ""
    hub_host = normal_host(urlsplit(settings.url).hostname or "")
    needed = [
        (settings.tls, hub_host, "the hub's address"),
        (settings.preview_tls, f"*.{settings.preview_domain}", "previews' hosts"),
    ]
    if settings.subdomains:
        needed.insert(1, (settings.tls, f"*.{hub_host}", "users' hosts"))
    for pair, name, what in needed:
        if pair.missing([name]):
            names = ", ".join(pair.names) or "no names (no subjectAltName)"
            advice = (
                " (or give previews their own with CODEPILOT_PREVIEW_SSL_CERT and "
                "CODEPILOT_PREVIEW_SSL_KEY)"
                if what == "previews' hosts" and pair.cert_variable == "CODEPILOT_SSL_CERT"
                else ""
            )
            return (
                f"{pair.cert_variable}={pair.cert} does not cover {name}, {what}: it names "
                f"{names}{advice}; see the README, HTTPS"
            )
    return ""


def server_settings(env) -> dict:
    """The ``c.CodePilot`` settings the hub passes on as they are, from its variables."""
    return {name: env[env_name(name)] for name in SERVER_SETTINGS if env.get(env_name(name))}


def s3_settings(env) -> S3Settings | None:
    """Where workspaces live in S3, from ``CODEPILOT_S3_*``; None without a bucket.

    With ``CODEPILOT_S3_ROLE_ARN``, the credential broker mints each server credentials
    for its own user's prefix (sts); without, servers get the hub's AWS keys (static).
    The prefix defaults to ``codepilot`` (an empty one is kept); the region to the hub's
    AWS configuration, then ``us-east-1``.
    """
    if not env.get("CODEPILOT_S3_BUCKET"):
        return None
    role_arn = env.get("CODEPILOT_S3_ROLE_ARN", "")
    region = (
        env.get("CODEPILOT_S3_REGION")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or S3_REGION
    )
    try:
        return S3Settings(
            bucket=env["CODEPILOT_S3_BUCKET"],
            prefix=env.get("CODEPILOT_S3_PREFIX", S3_PREFIX),
            endpoint_url=env.get("CODEPILOT_S3_ENDPOINT_URL", ""),
            region=region,
            mode=STS if role_arn else STATIC,
            role_arn=role_arn,
            duration_seconds=_int(env, "CODEPILOT_S3_CREDENTIALS_DURATION", 3600),
        )
    except ValueError as error:
        raise SettingsError(f"CODEPILOT_S3_*: {error}") from None


def automation_service(token: str) -> HubService:
    """The hub service and role behind CODEPILOT_ADMIN_TOKEN."""
    entry = {"name": "codepilot-automation", "api_token": token}
    role = {
        "name": "codepilot-automation",
        "description": "Automation with CODEPILOT_ADMIN_TOKEN",
        "scopes": AUTOMATION_SCOPES,
        "services": [entry["name"]],
    }
    return HubService(entry, (role,))


# --- isolation of servers (as root) -----------------------------------------------------


@dataclass(frozen=True)
class IsolationSettings:
    """What each server gets as root: a network namespace and these limits (None: none)."""

    enabled: bool = True
    mem_limit: int | None = 2 * 1024**3
    cpu_limit: float | None = 1.0
    pids_limit: int | None = 1024

    def __post_init__(self):
        self.limits  # noqa: B018 (the limits check their values)

    @classmethod
    def from_env(cls, env=os.environ) -> "IsolationSettings":
        def limit(name, parse, default):
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if raw.lower() == "none":
                return None
            try:
                return parse(raw)
            except ValueError as error:
                raise SettingsError(f"{name}={raw!r}: {error}") from None

        def whole(raw):
            try:
                return int(raw)
            except ValueError:
                raise ValueError("must be a whole number or none") from None

        try:
            return cls(
                enabled=env.get("CODEPILOT_ISOLATION", "true").lower() in ("1", "true", "yes"),
                mem_limit=limit("CODEPILOT_MEM_LIMIT", parse_memory, cls.mem_limit),
                cpu_limit=limit("CODEPILOT_CPU_LIMIT", float, cls.cpu_limit),
                pids_limit=limit("CODEPILOT_PIDS_LIMIT", whole, cls.pids_limit),
            )
        except SettingsError:
            raise
        except ValueError as error:  # the limits' own checks
            raise SettingsError(str(error)) from None

    @property
    def limits(self) -> Limits:
        return Limits(self.mem_limit, self.cpu_limit, self.pids_limit)

    def banner(self, is_root: bool) -> str:
        if not is_root:
            return (
                "  Isolation: OFF, the hub is not root: servers share this machine's "
                "network, users and files, without limits"
            )
        if not self.enabled:
            return (
                "  Isolation: network and limits OFF (CODEPILOT_ISOLATION=false): servers "
                "share this machine's network, so a student can reach another's app and "
                "take its port (and its preview) while it is down; no memory or CPU limits"
            )
        memory = describe_memory(self.mem_limit) if self.mem_limit else "no limit"
        cpus = f"{self.cpu_limit:g}" if self.cpu_limit else "no limit"
        pids = self.pids_limit or "no limit"
        return (
            "  Isolation: a Unix user and a network namespace per server; limits: "
            f"memory {memory}, CPUs {cpus}, processes {pids}"
        )


def loopback_url_port(url: str) -> int | None:
    """The port of ``url`` when its host is this machine's loopback, else None."""
    parsed = urlsplit(url)
    host = (parsed.hostname or "").lower()
    if host != "localhost" and not host.startswith("127."):
        return None
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def server_loopback_ports(settings: OneMachineSettings, env=os.environ) -> list[int]:
    """Host loopback ports servers in namespaces reach: the hub API, the preview API,
    the credential broker when it runs, and an S3 endpoint on loopback."""
    ports = {settings.hub_port, settings.preview_api_port}
    if settings.s3 and settings.s3.mode == STS:  # the broker runs in sts mode only
        ports.add(settings.broker_port)
    for url in (
        settings.s3.endpoint_url if settings.s3 else "",
        env.get("AWS_ENDPOINT_URL_S3", ""),
        env.get("AWS_ENDPOINT_URL", ""),
    ):
        port = loopback_url_port(url) if url else None
        if port:
            ports.add(port)
    return sorted(ports)
