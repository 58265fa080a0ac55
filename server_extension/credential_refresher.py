"""Renewal of a user server's short-lived S3 credentials through the hub's broker.

The server starts with credentials from its Secret (``AWS_*`` and
``CODEPILOT_S3_CREDENTIALS_EXPIRATION``); before they expire, ``CredentialRefresher``
fetches fresh ones from the credential broker (``c.CodePilot.credentials_url``) with the
server's own ``JUPYTERHUB_API_TOKEN``. ``use_broker_credentials`` puts it first in an aiobotocore
session's credential chain, and botocore refreshes through it before expiry.
"""

import asyncio
import logging
import os
from datetime import UTC, datetime, timedelta

from aiobotocore.credentials import AioRefreshableCredentials
from botocore.credentials import CredentialProvider
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from codepilot_contracts.broker import credentials_body, parse_credentials_body
from codepilot_contracts.env import CREDENTIALS_EXPIRATION

log = logging.getLogger("codepilot.credentials")


class CredentialsUnavailable(RuntimeError):
    """The broker could not give fresh credentials; the message says why."""


def parse_expiry(value: str) -> datetime:
    expiry = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)


def initial_metadata(environ=os.environ) -> dict | None:
    """The credentials the server started with, if its environment has expiring ones."""
    if not (environ.get("AWS_ACCESS_KEY_ID") and environ.get(CREDENTIALS_EXPIRATION)):
        return None
    return credentials_body(
        environ["AWS_ACCESS_KEY_ID"],
        environ.get("AWS_SECRET_ACCESS_KEY", ""),
        environ.get("AWS_SESSION_TOKEN"),
        environ[CREDENTIALS_EXPIRATION],
    )


class CredentialRefresher:
    """Keeps a server's S3 credentials fresh: renews them ``margin`` before they expire.

    ``current()`` returns valid credentials, renewing first if they are within the
    margin. botocore calls it as its refresh function (see ``BrokerCredentialProvider``),
    so renewal happens when the S3 client next needs credentials.
    """

    def __init__(
        self,
        url: str,
        api_token: str,
        metadata: dict | None = None,
        margin: timedelta = timedelta(minutes=10),
        request_timeout: float = 20,
    ):
        self.url = url
        self._api_token = api_token
        self.margin = margin
        self._metadata = None
        self._effective_margin = margin
        if metadata:
            self._keep(metadata)
        self.request_timeout = request_timeout
        self._lock = asyncio.Lock()
        self.renewals = 0

    @classmethod
    def for_url(cls, url: str, environ=os.environ, **kwargs) -> "CredentialRefresher | None":
        """For a server whose broker is at ``url``; None without one (keys never expire).

        The server's own API token and first credentials come from its environment,
        where JupyterHub and the spawner put them.
        """
        if not url:
            return None
        token = environ.get("JUPYTERHUB_API_TOKEN")
        if not token:
            raise CredentialsUnavailable(
                f"a credential broker is configured ({url}) but JUPYTERHUB_API_TOKEN is not set"
            )
        return cls(url, token, initial_metadata(environ), **kwargs)

    @property
    def expiry(self) -> datetime | None:
        if not self._metadata:
            return None
        return parse_expiry(self._metadata["expiry_time"])

    def _keep(self, metadata: dict) -> None:
        self._metadata = metadata
        # Short-lived credentials are renewed halfway, not in a loop once under the margin.
        lifetime = parse_expiry(metadata["expiry_time"]) - datetime.now(UTC)
        self._effective_margin = min(self.margin, lifetime / 2)

    def _needs_renewal(self) -> bool:
        expiry = self.expiry
        return expiry is None or expiry - self._effective_margin <= datetime.now(UTC)

    async def current(self) -> dict:
        """Credentials valid for at least ``margin`` (botocore metadata form)."""
        async with self._lock:
            if self._needs_renewal():
                await self._renew()
            return dict(self._metadata)

    async def _renew(self) -> None:
        request = HTTPRequest(
            self.url,
            headers={"Authorization": f"token {self._api_token}"},
            request_timeout=self.request_timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            body = error.response.body.decode(errors="replace") if error.response else ""
            raise CredentialsUnavailable(
                f"the credential broker answered {error.code}: {body[:200]}"
            ) from None
        except OSError as error:
            raise CredentialsUnavailable(f"the credential broker is unreachable: {error}") from None
        try:
            metadata = parse_credentials_body(response.body)
            if not metadata["expiry_time"]:
                raise ValueError("the broker's answer has no expiry_time")
            parse_expiry(metadata["expiry_time"])
        except (TypeError, ValueError) as error:
            raise CredentialsUnavailable(str(error)) from None
        self._keep(metadata)
        self.renewals += 1
        log.info("Renewed S3 credentials; they expire at %s", metadata["expiry_time"])


class BrokerCredentialProvider(CredentialProvider):
    """aiobotocore credential provider backed by a ``CredentialRefresher``.

    Put first in a session's chain (``insert_before("env", ...)``), it hands the S3 client
    credentials that botocore itself refreshes through the broker before they expire.
    """

    METHOD = "codepilot-broker"
    CANONICAL_NAME = "codepilot-broker"

    def __init__(self, refresher: CredentialRefresher):
        super().__init__()
        self.refresher = refresher

    async def load(self):
        return AioRefreshableCredentials.create_from_metadata(
            metadata=await self.refresher.current(),
            refresh_using=self.refresher.current,
            method=self.METHOD,
        )


def use_broker_credentials(session, url: str, environ=os.environ) -> bool:
    """Make an aiobotocore session renew its credentials at the broker at ``url``.

    Returns False where the server has no broker (``url`` empty: one machine, static
    keys): the standard AWS chain applies.
    """
    refresher = CredentialRefresher.for_url(url, environ)
    if refresher is None:
        return False
    resolver = session.get_component("credential_provider")
    resolver.insert_before("env", BrokerCredentialProvider(refresher))
    return True
