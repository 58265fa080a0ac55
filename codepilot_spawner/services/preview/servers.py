"""The running servers the gateway can route to, as the hub reports them.

The gateway reads the hub's REST API (``list:users``, ``read:servers``,
``admin:server_state``) and keys every ready server by its preview label. Where the
server's app listens comes from the spawner's state: ``netns``, the path of the server's
network namespace (empty when the hub is not root), and ``preview_port``; ``process_tag``
is new at every start, so sign-ins end when the server stops.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from codepilot_contracts.relay import START_CHECK_STATE, start_line

from .hosts import preview_label

PAGINATION = "application/jupyterhub-pagination+json"
# On-demand listings (a host no listing had yet) start at most this often: a flood of
# made-up hosts costs the hub one listing a second, a new server waits at most that.
MIN_FETCH_INTERVAL = 1.0


@dataclass(frozen=True)
class PreviewTarget:
    """One running user server, as far as its preview is concerned."""

    user: str
    server: str
    label: str
    start: str  # new at every start of the server
    port: int
    netns: str = ""
    groups: tuple[str, ...] = ()
    host: str = "127.0.0.1"  # a pod's IP on Kubernetes
    app_port: int = 0  # the app's own port when ``port`` is a relay's; 0: ``port``
    start_check: bool = False  # the relay takes only connections that name ``start``

    @property
    def connection_preamble(self) -> bytes:
        """What each connection to the app begins with: the start line for a relay that
        checks it (a reused pod IP then reaches no other server's app), else nothing."""
        return start_line(self.start) if self.start_check else b""


def targets_from_users(users: list[dict]) -> dict[str, PreviewTarget]:
    """``{label: PreviewTarget}`` for the ready servers in hub user models."""
    targets = {}
    for user in users:
        for server, model in (user.get("servers") or {}).items():
            state = model.get("state") or {}
            if not model.get("ready") or not state.get("preview_port"):
                continue
            label = preview_label(user["name"], server)
            targets[label] = PreviewTarget(
                user=user["name"],
                server=server,
                label=label,
                start=str(state.get("start_id") or state.get("process_tag", "")),
                port=int(state["preview_port"]),
                netns=str(state.get("netns", "")),
                groups=tuple(user.get("groups") or ()),
                host=str(state.get("preview_host") or "127.0.0.1"),
                app_port=int(state.get("preview_app_port") or 0),
                start_check=bool(state.get(START_CHECK_STATE)),
            )
    return targets


@dataclass
class ServerDirectory:
    """Running servers by preview label, refreshed from the hub every few seconds."""

    api_url: str
    api_token: str
    interval: float = 2.0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))
    targets: dict[str, PreviewTarget] = field(default_factory=dict)
    _fetched_since: float = -1.0  # when the last finished fetch began (monotonic)
    _refreshing: asyncio.Task | None = None
    # Whether the last fetch answered: until then ``targets`` may be stale or empty, and
    # nothing may be forgotten for the lack of a server in it.
    current_listing: bool = False

    async def fetch(self) -> dict[str, PreviewTarget]:
        client = AsyncHTTPClient()
        users, offset = [], 0
        while True:
            request = HTTPRequest(
                f"{self.api_url.rstrip('/')}/users?state=ready&offset={offset}&limit=200",
                headers={"Authorization": f"token {self.api_token}", "Accept": PAGINATION},
                request_timeout=10,
            )
            reply = json.loads((await client.fetch(request)).body)
            users.extend(reply["items"])
            following = reply.get("_pagination", {}).get("next")
            if not following:
                return targets_from_users(users)
            offset = following["offset"]

    async def refresh(self) -> None:
        """Fetch once; concurrent callers share the same fetch."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        started = time.monotonic()
        try:
            self.targets = await self.fetch()
            self.current_listing = True
        except Exception as error:  # keep the last view; the next poll tries again
            self.current_listing = False
            self.log.warning("Preview gateway: could not list servers at the hub: %s", error)
        finally:
            self._fetched_since = started

    async def current(self, label: str) -> PreviewTarget | None:
        """The target for ``label`` as the hub knows it now: from a fetch begun after this call.

        Callers that arrive during one fetch share the next one, and fetches start at
        most every ``MIN_FETCH_INTERVAL`` seconds, so a flood of unknown hosts costs the
        hub little, while a server that just started (or stopped) is seen at once.
        """
        asked_at = time.monotonic()
        while self._fetched_since < asked_at:
            wait = self._fetched_since + MIN_FETCH_INTERVAL - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.refresh()
        return self.targets.get(label)

    async def lookup(self, label: str) -> PreviewTarget | None:
        """The target for ``label``; an unknown label is looked up at the hub at once."""
        return self.targets.get(label) or await self.current(label)

    async def report_activity(self, activity: dict[tuple[str, str], float]) -> None:
        """Tell the hub when previews were last used: viewing a preview is using a server."""
        client = AsyncHTTPClient()
        by_user: dict[str, dict] = {}
        for (user, server), when in activity.items():
            stamp = datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
            by_user.setdefault(user, {})[server] = {"last_activity": stamp}
        for user, servers in by_user.items():
            request = HTTPRequest(
                f"{self.api_url.rstrip('/')}/users/{quote(user, safe='')}/activity",
                method="POST",
                headers={"Authorization": f"token {self.api_token}"},
                body=json.dumps({"servers": servers}),
                request_timeout=10,
            )
            try:
                await client.fetch(request)
            except Exception as error:  # a stopped server or a busy hub: next time
                self.log.debug("Preview gateway: activity of %s not reported: %s", user, error)
