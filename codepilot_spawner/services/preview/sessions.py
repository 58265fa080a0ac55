"""Who is signed in to which preview, and what each preview is shared with.

A viewer signs in at the hub (the gateway's ``login`` page, JupyterHub OAuth); the
gateway keeps their hub token here, behind a random session id that only the preview's
own cookie carries. Sessions are checked against the hub again every
``recheck_interval`` seconds, so a viewer whose access ends (a teacher's role removed,
the token revoked) is out within that time.

Both books are kept in files of the gateway's state folder (``KeptFile``), so a gateway
that restarts (its supervisor starts it again at once) keeps its viewers signed in and
its previews shared.
"""

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    checked_at: float = field(default_factory=time.monotonic)
    checking: bool = False

    def may_open(self, target: PreviewTarget) -> bool:
        return grants_server_access(self.scopes, target.user, target.server, target.groups)

    def kept(self) -> dict:
        """What a restarted gateway needs (it rechecks the scopes at the first use)."""
        record = asdict(self)
        del record["checked_at"], record["checking"]
        return {**record, "scopes": sorted(self.scopes)}

    @classmethod
    def from_kept(cls, record: dict) -> "ViewerSession":
        return cls(**{**record, "scopes": frozenset(record["scopes"])}, checked_at=0.0)


# Sessions one viewer keeps at once (a teacher with every student's preview open needs
# one each); a sign-in past it ends that viewer's oldest, so sign-ins cannot fill memory.
SESSIONS_PER_VIEWER = 200


class SessionBook:
    """Viewer sessions by id, and the single-use ticket nonces already spent."""

    def __init__(
        self, ttl: float, file: KeptFile | None = None, per_viewer: int = SESSIONS_PER_VIEWER
    ):
        self.ttl = ttl
        self.per_viewer = per_viewer
        self.file = file or KeptFile(None, logging.getLogger(__name__))
        self.sessions: dict[str, ViewerSession] = {}
        self.spent_nonces: dict[str, float] = {}
        kept = self.file.read()
        try:
            if kept:
                self.sessions = {
                    sid: ViewerSession.from_kept(record) for sid, record in kept["sessions"].items()
                }
                self.spent_nonces = dict(kept["spent_nonces"])
        except (KeyError, TypeError, ValueError) as error:
            self.file.log.warning("Preview gateway: ignoring kept sessions: %r", error)

    def _snapshot(self) -> dict:
        return {
            "sessions": {sid: session.kept() for sid, session in self.sessions.items()},
            "spent_nonces": self.spent_nonces,
        }

    async def open(self, viewer: str, token: str, scopes, target: PreviewTarget) -> str:
        theirs = [sid for sid, session in self.sessions.items() if session.viewer == viewer]
        for sid in theirs[: max(0, len(theirs) - self.per_viewer + 1)]:  # oldest first
            del self.sessions[sid]
        session_id = secrets.token_urlsafe(24)
        self.sessions[session_id] = ViewerSession(
            viewer=viewer,
            token=token,
            scopes=frozenset(scopes),
            label=target.label,
            start=target.start,
            expires=time.time() + self.ttl,
        )
        await self.file.write(self._snapshot)
        return session_id

    def get(self, session_id: str, target: PreviewTarget) -> ViewerSession | None:
        session = self.sessions.get(session_id)
        if session is None or session.expires < time.time():
            return None
        if (session.label, session.start) != (target.label, target.start):
            return None
        return session

    async def spend_nonce(self, nonce: str, until: float) -> bool:
        """True the first time ``nonce`` is presented (kept until ``until``), then False."""
        if nonce in self.spent_nonces:
            return False
        self.spent_nonces[nonce] = until
        await self.file.write(self._snapshot)
        return True

    async def prune(self, live_targets: dict[str, PreviewTarget]) -> None:
        """Forget expired sessions and nonces, and sessions of servers that stopped."""
        now = time.time()
        nonces = {n: t for n, t in self.spent_nonces.items() if t >= now}
        sessions = {
            sid: s
            for sid, s in self.sessions.items()
            if s.expires >= now
            and (target := live_targets.get(s.label)) is not None
            and target.start == s.start
        }
        if (len(nonces), len(sessions)) != (len(self.spent_nonces), len(self.sessions)):
            self.spent_nonces, self.sessions = nonces, sessions
            await self.file.write(self._snapshot)


class ShareBook:
    """Each running server's share level, kept in a file so a hub restart keeps it.

    A level belongs to one start of a server: after a restart the preview is private
    again (as a Codespaces port turns private again).
    """

    def __init__(self, file: KeptFile, allowed: tuple[str, ...]):
        self.file = file
        self.allowed = allowed
        levels = file.read()
        self.levels: dict[str, dict] = levels if isinstance(levels, dict) else {}

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
        self.levels[self._key(target)] = {"start": target.start, "share": level}
        await self.file.write(lambda: self.levels)

    async def prune(self, live_targets: dict[str, PreviewTarget]) -> None:
        live = {self._key(t): t.start for t in live_targets.values()}
        kept = {k: v for k, v in self.levels.items() if live.get(k) == v.get("start")}
        if kept != self.levels:
            self.levels = kept
            await self.file.write(lambda: self.levels)
