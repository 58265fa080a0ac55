"""Who is signed in to which preview, and what each preview is shared with.

A viewer signs in at the hub (the gateway's ``login`` page, JupyterHub OAuth). Their
session (who they are, their hub token, its ``access:servers`` scopes, the preview and
its start) is sealed (encrypted and authenticated with a key derived from the gateway's
signing key) into the session id that only the preview's own cookie carries: any
gateway sharing the key opens it, so replicas and restarts need no shared session
store. Sessions are checked against the hub again every ``recheck_interval`` seconds,
so a viewer whose access ends (a teacher's role removed, the token revoked) is out
within that time.

Spent sign-in links are kept in a file of the gateway's state folder (``KeptFile``);
share levels in that folder too, or in a hub group's properties (``HubGroupShares``)
where several gateways serve the same previews.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from codepilot_contracts.porthosts import split_port_label

from .access import DEFAULT_SHARE_LEVEL, grants_server_access
from .servers import PreviewTarget


class KeptFile:
    """A JSON value in a file private to the gateway (0600), written whole (a new file
    renamed over the old), off the event loop, one write at a time."""

    def __init__(self, path: Path | None, log: logging.Logger):
        self.path = path
        self.log = log
        self._lock = asyncio.Lock()

    def read(self):
        """The kept value, or None (no file, or one that cannot be read: start empty)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            self.log.warning("Preview gateway: ignoring unreadable %s: %s", self.path, error)
            return None

    async def fetch(self):
        """What others wrote since: nothing, this gateway is the file's only writer."""
        return None

    async def write(self, snapshot) -> None:
        """Keep what ``snapshot()`` returns when this write's turn comes (the newest)."""
        if self.path is None:
            return
        async with self._lock:
            await asyncio.to_thread(self._write, json.dumps(snapshot()))

    def _write(self, text: str) -> None:
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        partial.replace(self.path)


@dataclass
class ViewerSession:
    viewer: str
    token: str
    scopes: frozenset[str]
    label: str
    start: str
    expires: float
    checked_at: float = field(default_factory=time.monotonic, init=False)
    checking: asyncio.Future | None = field(default=None, init=False)  # a hub check under way

    def may_open(self, target: PreviewTarget) -> bool:
        return grants_server_access(self.scopes, target.user, target.server, target.groups)

    def kept(self) -> dict:
        """What a restarted gateway needs (it rechecks the scopes at the first use)."""
        record = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return {**record, "scopes": sorted(self.scopes)}

    @classmethod
    def from_kept(cls, record: dict) -> "ViewerSession":
        session = cls(**{**record, "scopes": frozenset(record["scopes"])})
        session.checked_at = 0.0  # never checked here: at the hub before its first use
        return session


# Sessions one gateway holds in memory (their recheck times and revocations); past it the
# oldest is dropped, and comes back from its cookie, to be checked at the hub again.
SESSIONS_IN_MEMORY = 50_000


def derived_key(key: bytes, purpose: str) -> bytes:
    """A key of its own for each use of the gateway's signing key."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


class SessionBook:
    """Viewer sessions sealed into their ids, a bounded memory of those in use, and the
    single-use ticket nonces already spent."""

    def __init__(
        self,
        ttl: float,
        file: KeptFile | None = None,
        in_memory: int = SESSIONS_IN_MEMORY,
        key: bytes | None = None,
    ):
        self.ttl = ttl
        self.in_memory = in_memory
        self.file = file or KeptFile(None, logging.getLogger(__name__))
        self._sealer = Fernet(
            base64.urlsafe_b64encode(derived_key(key or secrets.token_bytes(32), "sessions"))
        )
        self.sessions: dict[str, ViewerSession] = {}
        self.spent_nonces: dict[str, float] = {}
        kept = self.file.read()
        try:
            if kept:
                self.spent_nonces = dict(kept["spent_nonces"])
        except (KeyError, TypeError, ValueError) as error:
            self.file.log.warning("Preview gateway: ignoring kept sign-ins: %r", error)

    def _snapshot(self) -> dict:
        return {"spent_nonces": self.spent_nonces}

    def _remember(self, session_id: str, session: ViewerSession) -> None:
        if len(self.sessions) >= self.in_memory:  # forget the oldest (dicts keep their order)
            del self.sessions[next(iter(self.sessions))]
        self.sessions[session_id] = session

    async def open(self, viewer: str, token: str, scopes, target: PreviewTarget) -> str:
        """A new session's id: the session itself, sealed."""
        session = ViewerSession(
            viewer=viewer,
            token=token,
            # Only access:servers decides what a viewer opens; the rest would only grow
            # the cookie.
            scopes=frozenset(s for s in scopes if s.partition("!")[0] == "access:servers"),
            label=target.label,
            start=target.start,
            expires=time.time() + self.ttl,
        )
        record = json.dumps({**session.kept(), "nonce": secrets.token_urlsafe(8)})
        session_id = self._sealer.encrypt(record.encode()).decode()
        self._remember(session_id, session)
        return session_id

    def get(self, session_id: str, target: PreviewTarget) -> ViewerSession | None:
        session = self.sessions.get(session_id)
        if session is None:
            session = self._unseal(session_id)
            if session is None:
                return None
            self._remember(session_id, session)
        if session.expires < time.time():
            return None
        if (session.label, session.start) != (target.label, target.start):
            return None
        return session

    def _unseal(self, session_id: str) -> ViewerSession | None:
        """A session another gateway (or this one before a restart) opened: checked at
        the hub at its first use here."""
        try:
            record = json.loads(self._sealer.decrypt(session_id.encode()))
            del record["nonce"]
            return ViewerSession.from_kept(record)
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None

    async def spend_nonce(self, nonce: str, until: float) -> bool:
        """True the first time ``nonce`` is presented (kept until ``until``), then False."""
        if nonce in self.spent_nonces:
            return False
        self.spent_nonces[nonce] = until
        await self.file.write(self._snapshot)
        return True

    async def prune(self, live_targets: dict[str, PreviewTarget]) -> None:
        """Forget expired nonces, and the sessions of servers that stopped."""
        now = time.time()
        nonces = {n: t for n, t in self.spent_nonces.items() if t >= now}
        self.sessions = {
            sid: s
            for sid, s in self.sessions.items()
            if s.expires >= now
            # A session of a ``<port>--<label>`` host lives as long as its server's start.
            and (target := live_targets.get(split_port_label(s.label)[1])) is not None
            and target.start == s.start
        }
        if len(nonces) != len(self.spent_nonces):
            self.spent_nonces = nonces
            await self.file.write(self._snapshot)


class ShareBook:
    """Each running server's share level, kept in a file (or a hub group) so a restart
    keeps it.

    A level belongs to one start of a server: after a restart the preview is private
    again (as a Codespaces port turns private again).

    Where several gateways keep levels in one hub group, the hub can only replace the
    whole list (no compare-and-set): a gateway that read before another's change and
    writes after it drops that change. So each level carries when it was set, and a
    gateway keeps the levels it set itself until their server stops: whenever it reads
    the store (at each poll, and again after its own write) it puts back any of them the
    store lost, unless the store holds a newer one.
    """

    # Reads back (and writes again) after a change before it counts as kept.
    RETRIES = 6

    def __init__(self, file: "KeptFile | HubGroupShares", allowed: tuple[str, ...]):
        self.file = file
        self.allowed = allowed
        levels = file.read()
        self.levels: dict[str, dict] = levels if isinstance(levels, dict) else {}
        self.mine: dict[str, dict] = {}  # set here; put back should the store lose them

    @staticmethod
    def _key(target: PreviewTarget) -> str:
        return f"{target.user}/{target.server}"

    def level(self, target: PreviewTarget) -> str:
        record = self.levels.get(self._key(target))
        if not record or record.get("start") != target.start:
            return DEFAULT_SHARE_LEVEL
        level = record.get("share", DEFAULT_SHARE_LEVEL)
        # An admin who narrows the allowed levels narrows running previews too.
        return level if level in self.allowed else DEFAULT_SHARE_LEVEL

    async def set_level(self, target: PreviewTarget, level: str) -> None:
        if level not in self.allowed:
            raise ValueError(
                f"share level {level!r} is not allowed here; allowed: {', '.join(self.allowed)}"
            )
        key = self._key(target)
        record = {"start": target.start, "share": level, "set_at": time.time()}
        self.mine[key] = self.levels[key] = record
        wrote = await self._sync()
        if wrote is None:  # a store no other gateway writes
            await self.file.write(lambda: self.levels)
            return
        # Read back until the store holds it twice, a while apart: a gateway that read
        # before this write may write over it, within about one round trip to the hub.
        settled = False
        for _ in range(self.RETRIES):
            began = time.monotonic()
            if await self._sync():
                settled = False
                continue
            if settled:
                return
            settled = True
            await asyncio.sleep(min(2 * (time.monotonic() - began) + 0.05, 2.0))
        self.log_unsettled(key)

    def log_unsettled(self, key: str) -> None:
        self.file.log.warning(
            "Preview gateway: the share level of %s is not kept yet; the next poll tries again",
            key,
        )

    async def refresh(self) -> None:
        """Take the levels other gateways kept since, and put back those of this one the
        store lost (nothing where the file is ours alone)."""
        await self._sync()

    async def _sync(self) -> bool | None:
        """Merge the store's levels with those set here; True when that took a write,
        None when the store has no other writers (or did not answer)."""
        kept = await self.file.fetch()
        if kept is None:
            return None
        merged = dict(kept)
        for key, record in list(self.mine.items()):
            theirs = kept.get(key)
            if theirs is None or set_order(theirs) < set_order(record):
                merged[key] = record
            elif set_order(record) < set_order(theirs):
                del self.mine[key]  # changed since by another gateway: theirs stands
        self.levels = merged
        if merged == kept:
            return False
        await self.file.write(lambda: merged)
        return True

    async def prune(self, live_targets: dict[str, PreviewTarget]) -> None:
        await self.refresh()
        live = {self._key(t): t.start for t in live_targets.values()}
        self.mine = {k: v for k, v in self.mine.items() if live.get(k) == v.get("start")}
        kept = {k: v for k, v in self.levels.items() if live.get(k) == v.get("start")}
        if kept != self.levels:
            self.levels = kept
            await self.file.write(lambda: self.levels)


def set_order(record: dict) -> tuple:
    """Which of two levels of one preview is the newer (levels kept before ``set_at``
    count as oldest; a tie is broken the same way on every gateway)."""
    return (record.get("set_at", 0.0), str(record.get("share", "")), str(record.get("start")))


class HubGroupShares:
    """Share levels kept in the properties of one hub group, through the hub's API
    (``groups!group=<name>``): every gateway serving the same previews reads the same
    levels, and the hub's database keeps them. Read and written whole; the ``KeptFile``
    interface, so ``ShareBook`` keeps its levels here as in a file."""

    def __init__(self, api_url: str, api_token: str, group: str, log: logging.Logger):
        self.url = f"{api_url.rstrip('/')}/groups/{quote(group, safe='')}"
        self.api_token = api_token
        self.log = log

    def read(self):
        return None  # the first refresh() reads the hub; nothing to read before it

    async def fetch(self) -> dict | None:
        """The kept levels, or None when the hub did not answer (keep what we have)."""
        try:
            reply = await AsyncHTTPClient().fetch(
                HTTPRequest(self.url, headers=self._headers(), request_timeout=10)
            )
        except Exception as error:
            self.log.warning("Preview gateway: could not read share levels: %s", error)
            return None
        properties = json.loads(reply.body).get("properties") or {}
        return properties.get("shares") if isinstance(properties.get("shares"), dict) else {}

    async def write(self, snapshot) -> None:
        request = HTTPRequest(
            self.url + "/properties",
            method="PUT",
            headers=self._headers(),
            body=json.dumps({"shares": snapshot()}),
            request_timeout=10,
        )
        await AsyncHTTPClient().fetch(request)

    def _headers(self) -> dict:
        return {"Authorization": f"token {self.api_token}"}
