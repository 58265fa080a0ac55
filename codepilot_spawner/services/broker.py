"""The credential broker: a hub-managed service where user servers renew their S3 keys.

A server calls ``GET <service prefix>api/credentials`` with its own
``JUPYTERHUB_API_TOKEN``; the broker asks the hub whose token it is (HubAuth, as every
JupyterHub service does) and mints fresh keys for that user's prefix only. Naming a
user, ``api/credentials/<user>``, is allowed only for the token's own user: a token of
user B asking for A's credentials gets 403.

Run by the hub as ``python -m codepilot_spawner.services.broker``; settings come from the
``CODEPILOT_S3_*`` variables and the hub's own AWS identity from the ``AWS_*`` variables of
boto3's credential chain (keys, or a web identity token with IAM roles for service
accounts, or EKS Pod Identity's container credentials).
"""

import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.log import enable_pretty_logging

from codepilot_contracts.broker import (
    CREDENTIALS_PATH,
    SERVICE_NAME,
    credentials_body,
    credentials_path,
)

from ..credential_minter import CredentialMinter, CredentialsError, credential_chain_environment
from ..s3settings import STS, S3Settings
from ..spawners.projectlimits import SERVER_TOKEN_SCOPES as PROJECT_SCOPES
from .declaration import HubService
from .errors import error_body
from .servicelife import until_stopped

DEFAULT_PORT = 8082
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
# A server token's scopes (the hub's server role, the owner's projects) and the right to
# call the broker.
SERVER_TOKEN_SCOPES = [*PROJECT_SCOPES, ACCESS_SCOPE]

log = logging.getLogger("codepilot.broker")


class CredentialsHandler(HubAuthenticated, web.RequestHandler):
    """``GET api/credentials[/<user>]``: botocore credential metadata as JSON."""

    def initialize(self, minter: CredentialMinter):
        self.minter = minter

    async def prepare(self):
        # Ask the hub about the token without blocking the loop (HubAuth's default is
        # a synchronous call), then apply the service's scope check.
        # Tornado's current_user setter: get_current_user (HubAuth's synchronous one) is
        # then never called.
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            self.current_user = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            raise web.HTTPError(403, "this token may not use the credential broker") from None

    def check_xsrf_cookie(self):
        # Token-only API: there is no cookie session to forge.
        pass

    async def get(self, requested_user: str = ""):
        identity = self.current_user
        if identity is None:
            raise web.HTTPError(401, "a JupyterHub API token is required")
        if identity.get("kind") != "user":
            raise web.HTTPError(403, "only user servers get S3 credentials")
        username = identity["name"]
        if requested_user and requested_user != username:
            log.warning("Refused: %s asked for the S3 credentials of %s", username, requested_user)
            raise web.HTTPError(403, "a server gets the credentials of its own user only")
        try:
            metadata = await self.minter.mint(username)
        except CredentialsError as error:
            log.error("Minting S3 credentials for %s failed: %s", username, error)
            raise web.HTTPError(
                503, "S3 credentials could not be minted; see the hub log"
            ) from None
        log.info("Minted S3 credentials for %s, expiring %s", username, metadata["expiry_time"])
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(credentials_body(**metadata)))

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(error_body(status_code, kwargs.get("exc_info", (None, None))[1]))


def make_app(minter: CredentialMinter, prefix: str, hub_auth: HubAuth) -> web.Application:
    route = url_path_join(prefix, CREDENTIALS_PATH)
    return web.Application(
        [
            (route, CredentialsHandler, {"minter": minter}),
            (url_path_join(route, "([^/]+)"), CredentialsHandler, {"minter": minter}),
        ],
        hub_auth=hub_auth,
    )


def bind_address(service_url: str, environ=os.environ) -> tuple[str, int]:
    """Where to listen: ``CODEPILOT_BROKER_IP`` or the service URL's host, and its port.

    In a pod the URL names a Kubernetes Service, not an address of the pod: set
    ``CODEPILOT_BROKER_IP=0.0.0.0`` there.
    """
    url = urlparse(service_url)
    return environ.get("CODEPILOT_BROKER_IP") or url.hostname or "127.0.0.1", url.port or 80


def hub_service(
    url: str,
    settings: S3Settings,
    bind_ip: str = "",
    python: str = sys.executable,
    environ=os.environ,
):
    """The broker as a hub-managed service, and the roles that let servers call it.

    The ``user`` role gains the right to call the broker, so server tokens (a subset of
    their user's scopes) can carry it, as ``server_token_scopes`` asks. ``bind_ip`` is
    where the broker listens when the URL's host is not an address of its own
    (``0.0.0.0`` behind a Kubernetes Service).
    """
    if settings.mode != STS:
        raise ValueError("the credential broker is only for sts mode")
    # A managed service does not inherit the hub's environment: pass on what boto3's
    # credential chain reads, so IRSA and Pod Identity work as well as static keys.
    service_env = {**settings.to_environ(), **credential_chain_environment(environ)}
    if bind_ip:
        service_env["CODEPILOT_BROKER_IP"] = bind_ip
    entry = {
        "name": SERVICE_NAME,
        "url": url,
        "command": [python, "-m", "codepilot_spawner.services.broker"],
        "environment": service_env,
        "display": False,
    }
    user_role = {
        "name": "user",
        "description": "Standard user privileges, and renewing S3 credentials",
        "scopes": ["self", ACCESS_SCOPE],
    }
    return HubService(entry, (user_role,), tuple(SERVER_TOKEN_SCOPES))


@dataclass(frozen=True)
class BrokerWiring:
    """The broker as one hub config needs it: the service, and the servers' URL of it."""

    service: HubService
    credentials_url: str

    def apply(self, config, spawner_config, services: list, roles: list) -> None:
        """Add it to a hub config: ``config`` is ``c``, ``spawner_config`` the spawner's
        section (``c.CodePilotSpawner``); ``services`` and ``roles`` are the lists the
        config hands JupyterHub."""
        self.service.add_to(services, roles)
        config.Spawner.server_token_scopes = list(self.service.server_token_scopes)
        spawner_config.credentials_url = self.credentials_url


def broker_wiring(
    s3: S3Settings | None,
    service_url: str,
    base_url: str = "/",
    bind_ip: str = "",
    python: str = sys.executable,
    environ=os.environ,
) -> BrokerWiring | None:
    """The broker for ``s3`` at ``service_url`` (as user servers reach the hub's host, under
    the hub's ``base_url``), or None when servers need none: no bucket, or static keys."""
    if s3 is None or not s3.bucket or s3.mode != STS:
        return None
    return BrokerWiring(
        hub_service(service_url, s3, bind_ip, python, environ),
        service_url.rstrip("/") + credentials_path(base_url),
    )


async def serve(environ=os.environ) -> None:
    settings = S3Settings.from_environ(environ)
    minter = CredentialMinter(settings, environ=environ, log=log)
    hub_auth = HubAuth()
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    app = make_app(minter, prefix, hub_auth)
    ip, port = bind_address(environ.get("JUPYTERHUB_SERVICE_URL", ""), environ)
    app.listen(port, ip)
    log.info(
        "Credential broker for s3://%s listening on %s:%s%s", settings.bucket, ip, port, prefix
    )
    await until_stopped(log, "Credential broker")


def main() -> None:
    enable_pretty_logging()
    logging.getLogger().setLevel(logging.INFO)
    try:
        asyncio.run(serve())
    except ValueError as error:  # bad settings: say which, exit non-zero
        sys.exit(f"codepilot credential broker: {error}")


if __name__ == "__main__":
    main()
