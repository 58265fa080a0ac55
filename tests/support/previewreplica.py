"""A preview gateway built as each replica on Kubernetes runs it: the Secret's signing
key, sign-in links bound to their browser, the hub's listing already read."""

import contextlib
import logging

from aiohttp import web

from codepilot_spawner.services.preview.access import SHARE_LEVELS
from codepilot_spawner.services.preview.app import previews_server
from codepilot_spawner.services.preview.gateway import PreviewGateway
from codepilot_spawner.services.preview.hosts import PreviewDomain
from codepilot_spawner.services.preview.servers import PreviewTarget, ServerDirectory
from codepilot_spawner.services.preview.sessions import KeptFile, SessionBook, ShareBook

from .loopback import start_on_loopback

NO_HUB = "http://127.0.0.1:9/hub/api"  # nothing listens on port 9: rechecks keep what was


def gateway_replica(
    key: bytes,
    targets: list[PreviewTarget],
    hub_api_url: str = NO_HUB,
    api_token: str = "t",
    hub_auth=None,
    **settings,
) -> PreviewGateway:
    """``hub_auth`` None: rechecks find no hub and keep what the sign-in said."""
    directory = ServerDirectory(api_url=hub_api_url, api_token=api_token)
    directory.targets, directory.current_listing = {t.label: t for t in targets}, True
    return PreviewGateway(
        domain=PreviewDomain("preview.localhost", "http"),
        directory=directory,
        sessions=SessionBook(3600, key=key),
        shares=ShareBook(KeptFile(None, logging.getLogger()), SHARE_LEVELS),
        secret=key,
        login_url="http://hub.localhost/services/codepilot-preview/login",
        hub_auth=hub_auth,
        bind_sign_in=True,
        **settings,
    )


@contextlib.asynccontextmanager
async def serving(gateway: PreviewGateway):
    """The gateway's previews served on a loopback port (its base URL), as the gateway app
    serves them; the gateway is closed afterwards."""
    runner = web.ServerRunner(previews_server(gateway.handle, idle_timeout=5))
    port = await start_on_loopback(runner)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await gateway.close()
        await runner.cleanup()
