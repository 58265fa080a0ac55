"""The running servers the gateway can route to, as the hub reports them.

The gateway reads the hub's REST API (``list:users``, ``read:servers``,
``admin:server_state``) and keys every ready server by its preview label. Where the
server's app listens, and which start of the server it is, is the ``PreviewRoute`` the
spawner keeps in its state (``spawners/previewroute.py``); the start id is new at every
start, so sign-ins end when the server stops.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from codepilot_contracts.porthosts import port_label, split_port_label

from ...spawners.previewroute import PreviewRoute
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
    route: PreviewRoute
    groups: tuple[str, ...] = ()
    port: int = 0  # a ``<port>--<label>`` host's port; 0: the main host, the app's

    @property
    def start(self) -> str:
        """The start of the server this target is: sign-ins and share levels are its."""
        return self.route.start_id

    def for_port(self, port: int) -> "PreviewTarget | None":
        """The preview of another ``port`` of this server, an origin of its own (its label
        is ``<port>--<label>``); None where the server's ports are not previewed."""
        if not self.route.previews_ports:
            return None
        return replace(self, label=port_label(port, self.label), port=port)


def target_of(host_label: str, targets: dict[str, PreviewTarget]) -> PreviewTarget | None:
    """The target a host's label names: a server's main preview, or one of its ports."""
    port, label = split_port_label(host_label)
    target = targets.get(label)
    if target is None or port == 0:
        return target
    return target.for_port(port)


def targets_from_users(users: list[dict]) -> dict[str, PreviewTarget]:
    """``{label: PreviewTarget}`` for the ready servers in hub user models."""
    targets = {}
    for user in users:
        for server, model in (user.get("servers") or {}).items():
            route = PreviewRoute.from_state(model.get("state") or {})
            if not model.get("ready") or route is None:
                continue
            label = preview_label(user["name"], server)
            targets[label] = PreviewTarget(
                user=user["name"],
                server=server,
                label=label,
                route=route,
                groups=tuple(user.get("groups") or ()),
            )
    return targets


@dataclass
class ServerDirectory:
    """Running servers by preview label, refreshed from the hub every few seconds.

    A listing is work on the hub's event loop that grows with the class (about a
    millisecond per running server), so polls are spaced to cost the hub at most
    ``hub_share`` of its time: every ``interval`` seconds in a small class, up to
    ``max_interval`` in a large one. Freshness does not rest on the poll: a host no
    listing knows yet, and an app that does not answer, are looked up at once.
    """

    api_url: str
    api_token: str
    interval: float = 2.0
    max_interval: float = 30.0
    hub_share: float = 0.02
    last_fetch_seconds: float = 0.0
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

    @property
    def next_interval(self) -> float:
        """Seconds until the next poll: ``interval``, longer when listings take long."""
        spaced = self.last_fetch_seconds / self.hub_share
        return min(self.max_interval, max(self.interval, spaced))

    async def _refresh(self) -> None:
        started = time.monotonic()
        try:
            self.targets = await self.fetch()
            self.current_listing = True
            self.last_fetch_seconds = time.monotonic() - started
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
        return target_of(label, self.targets)

    async def lookup(self, label: str) -> PreviewTarget | None:
        """The target for ``label``; an unknown label is looked up at the hub at once."""
        return target_of(label, self.targets) or await self.current(label)

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
