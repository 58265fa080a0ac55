"""Who is signed in to which preview, and what each preview is shared with.

A viewer signs in at the hub (the gateway's ``login`` page, JupyterHub OAuth); the
gateway keeps their hub token here, behind a random session id that only the preview's
own cookie carries. Sessions are checked against the hub again every
``recheck_interval`` seconds, so a viewer whose access ends (a teacher's role removed,
the token revoked) is out within that time.
"""

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from .access import DEFAULT_SHARE_LEVEL, grants_server_access
from .servers import PreviewTarget


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


# Sessions one viewer keeps at once (a teacher with every student's preview open needs
# one each); a sign-in past it ends that viewer's oldest, so sign-ins cannot fill memory.
SESSIONS_PER_VIEWER = 200


class SessionBook:
    """Viewer sessions by id, and the single-use ticket nonces already spent."""

    def __init__(self, ttl: float, per_viewer: int = SESSIONS_PER_VIEWER):
        self.ttl = ttl
        self.per_viewer = per_viewer
        self.sessions: dict[str, ViewerSession] = {}
        self.spent_nonces: dict[str, float] = {}

    def open(self, viewer: str, token: str, scopes, target: PreviewTarget) -> str:
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
        return session_id

    def get(self, session_id: str, target: PreviewTarget) -> ViewerSession | None:
        session = self.sessions.get(session_id)
        if session is None or session.expires < time.time():
            return None
        if (session.label, session.start) != (target.label, target.start):
            return None
        return session

    def spend_nonce(self, nonce: str, until: float) -> bool:
        """True the first time ``nonce`` is presented (kept until ``until``), then False."""
        if nonce in self.spent_nonces:
            return False
        self.spent_nonces[nonce] = until
        return True

    def prune(self, live_targets: dict[str, PreviewTarget]) -> None:
        """Forget expired sessions and nonces, and sessions of servers that stopped."""
        now = time.time()
        self.spent_nonces = {n: t for n, t in self.spent_nonces.items() if t >= now}
        self.sessions = {
            sid: s
            for sid, s in self.sessions.items()
            if s.expires >= now
            and (target := live_targets.get(s.label)) is not None
            and target.start == s.start
        }


class ShareBook:
    """Each running server's share level, kept in a file so a hub restart keeps it.

    A level belongs to one start of a server: after a restart the preview is private
    again (as a Codespaces port turns private again).
    """

    def __init__(self, path: Path | None, allowed: tuple[str, ...], log: logging.Logger):
        self.path = path
        self.allowed = allowed
        self.log = log
        self.levels: dict[str, dict] = {}
        if path is not None and path.exists():
            try:
                self.levels = json.loads(path.read_text())
            except (OSError, ValueError) as error:
                log.warning("Preview gateway: ignoring unreadable %s: %s", path, error)

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
        await self._save()

    async def prune(self, live_targets: dict[str, PreviewTarget]) -> None:
        live = {self._key(t): t.start for t in live_targets.values()}
        kept = {k: v for k, v in self.levels.items() if live.get(k) == v.get("start")}
        if kept != self.levels:
            self.levels = kept
            await self._save()

    async def _save(self) -> None:
        if self.path is not None:
            await asyncio.to_thread(self._write, json.dumps(self.levels))

    def _write(self, text: str) -> None:
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        partial.replace(self.path)
