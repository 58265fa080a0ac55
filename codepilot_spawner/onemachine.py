"""The one-machine hub: its settings, its secrets, and the ``make up`` launcher.

``hub_config/jupyterhub_config_local.py`` applies ``OneMachineSettings`` to the hub;
``python -m codepilot_spawner.onemachine`` prepares the data directory, prints how to log
in and starts JupyterHub with that config.
"""

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HUB_CONFIG = REPO_ROOT / "hub_config" / "jupyterhub_config_local.py"

# SharedPasswordAuthenticator's minimum lengths.
MIN_USER_PASSWORD = 8
MIN_ADMIN_PASSWORD = 32

AUTOMATION_SCOPES = [
    "admin:users",
    "admin:servers",
    "access:servers",
    "tokens",
    "read:users",
    "list:users",
]


# c.CodePilot settings the hub passes on to every user server, from its own environment.
SERVER_SETTINGS = ["storage", "s3_bucket", "s3_prefix", "s3_endpoint_url", "s3_region"]


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
        return cls(
            ip=env.get("CODEPILOT_IP", "127.0.0.1"),
            port=_int(env, "CODEPILOT_PORT", 8000),
            hub_port=_int(env, "CODEPILOT_HUB_PORT", 8081),
            proxy_api_port=_int(env, "CODEPILOT_PROXY_API_PORT", 8001),
            broker_port=_int(env, "CODEPILOT_BROKER_PORT", 8082),
            data_dir=Path(env.get("CODEPILOT_DATA_DIR", ".codepilot")).resolve(),
            admin_user=env.get("CODEPILOT_ADMIN_USER", "admin"),
            named_server_limit=_int(env, "CODEPILOT_NAMED_SERVER_LIMIT", 5),
            allow_all=env.get("CODEPILOT_ALLOW_ALL", "true").lower() in ("1", "true", "yes"),
            admin_token=admin_token,
            server_settings=server_settings(env),
            public_url=env.get("CODEPILOT_PUBLIC_URL", "").rstrip("/"),
            preview_domain=preview_domain(env),
            preview_port=_int(env, "CODEPILOT_PREVIEW_GATEWAY_PORT", 8002),
            preview_api_port=_int(env, "CODEPILOT_PREVIEW_API_PORT", 8083),
            preview_share_levels=tuple(
                level.strip()
                for level in env.get(
                    "CODEPILOT_PREVIEW_SHARE_LEVELS", "owner,authenticated,public"
                ).split(",")
                if level.strip()
            ),
        )

    public_url: str = ""

    @property
    def url(self) -> str:
        """Where people open the hub: ``CODEPILOT_PUBLIC_URL``, else ``http://<ip>:<port>``."""
        return self.public_url or f"http://{self.ip}:{self.port}"


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
    if ip not in LOOPBACK_IPS and not ip.startswith("127."):
        raise SettingsError(
            f"CODEPILOT_IP={ip} serves the hub to the network, but previews default to "
            "*.preview.localhost, which only this machine resolves. Set "
            "CODEPILOT_PREVIEW_DOMAIN to a domain whose wildcard record (*.<domain>) points "
            "at this machine, for example CODEPILOT_PREVIEW_DOMAIN=preview.example.org; "
            "see the README, Live preview."
        )
    return "preview.localhost"


def server_settings(env) -> dict:
    """The ``c.CodePilot`` settings the hub passes on, from its ``CODEPILOT_*`` variables.

    With a bucket, the prefix defaults to ``codepilot``, as on Kubernetes and in the
    credential broker's policies.
    """
    settings = {
        name: env[f"CODEPILOT_{name.upper()}"]
        for name in SERVER_SETTINGS
        if env.get(f"CODEPILOT_{name.upper()}")
    }
    if settings.get("s3_bucket") and "CODEPILOT_S3_PREFIX" not in env:
        settings["s3_prefix"] = "codepilot"
    return settings


def read_or_create_secret(path: Path, nbytes: int) -> str:
    """The secret kept in ``path`` (mode 0600), generated the first time."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def passwords(settings: OneMachineSettings, env=os.environ) -> tuple[str, str]:
    """(student password, admin password): from the environment or kept in the data dir."""
    user_password = env.get("CODEPILOT_PASSWORD") or read_or_create_secret(
        settings.data_dir / "password", 9
    )
    admin_password = env.get("CODEPILOT_ADMIN_PASSWORD") or read_or_create_secret(
        settings.data_dir / "admin_password", 32
    )
    if len(user_password) < MIN_USER_PASSWORD:
        raise SettingsError(f"CODEPILOT_PASSWORD must be at least {MIN_USER_PASSWORD} characters")
    if len(admin_password) < MIN_ADMIN_PASSWORD:
        raise SettingsError(
            f"CODEPILOT_ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD} characters"
        )
    if user_password == admin_password:
        raise SettingsError("CODEPILOT_ADMIN_PASSWORD must differ from CODEPILOT_PASSWORD")
    return user_password, admin_password


def automation_service(token: str) -> tuple[dict, dict]:
    """The hub service and role behind CODEPILOT_ADMIN_TOKEN."""
    service = {"name": "codepilot-automation", "api_token": token}
    role = {
        "name": "codepilot-automation",
        "description": "Automation with CODEPILOT_ADMIN_TOKEN",
        "scopes": AUTOMATION_SCOPES,
        "services": [service["name"]],
    }
    return service, role


def login_banner(settings: OneMachineSettings, user_password: str, admin_password: str) -> str:
    return "\n".join(
        [
            "",
            f"  Code Pilot is starting at {settings.url}",
            "",
            f"  Students: any user name, password {user_password}",
            f"  Admin:    user {settings.admin_user}, password {admin_password}",
            f"  Data:     {settings.data_dir}",
            "",
        ]
    )


def main() -> None:
    try:
        settings = OneMachineSettings.from_env()
        user_password, admin_password = passwords(settings)
    except SettingsError as error:
        sys.exit(f"codepilot: {error}")
    print(login_banner(settings, user_password, admin_password), flush=True)
    os.chdir(settings.data_dir)
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    os.execv(jupyterhub, [str(jupyterhub), "-f", str(HUB_CONFIG), *sys.argv[1:]])


if __name__ == "__main__":
    main()
