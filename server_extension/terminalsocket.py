"""Terminal websockets (the Run panel's and every terminal's) that a slow viewer cannot
make the server buffer without bound.

terminado writes each read of a terminal to every attached websocket without waiting,
and tornado keeps what a viewer has not taken yet. A viewer that does not read (a
stalled tab, a slow network) would make the server hold everything the terminal prints:
50 MB for a run that floods its output.

Each websocket counts the bytes handed to tornado whose write has not completed (the
Future ``write_message`` returns). Output that would take that over the limit is not
sent: the viewer has fallen behind, gets nothing more, and once what it was sent has
gone out it is closed with ``SLOW_VIEWER_CLOSE_CODE``. JupyterLab's terminal connection
reconnects on any code but 1000 and 1001, and terminado replays the terminal's recent
output to it, as after a reload. The replay begins with a terminal reset, so a viewer
that reattaches shows the recent output once, not again after what it showed already.
"""

from jupyter_server_terminals.handlers import TermSocket
from tornado.websocket import WebSocketHandler

# An application code (4000-4999): output was skipped, reattach for the latest.
SLOW_VIEWER_CLOSE_CODE = 4002
SLOW_VIEWER_REASON = "this viewer fell behind the terminal's output: reattach"
# Where the limit comes from: ``c.CodePilot.terminal_backlog_bytes``.
BACKLOG_SETTING = "codepilot_terminal_backlog_bytes"
DEFAULT_BACKLOG_BYTES = 4 * 1024 * 1024
# Full reset (RIS): to a new viewer's empty screen it changes nothing; a viewer that
# reattaches (after SLOW_VIEWER_CLOSE_CODE, a dropped network) starts again from empty.
REPLAY_RESET = "\x1bc"


class BoundedWrites(WebSocketHandler):
    """A websocket whose writes not yet flushed stay under a limit; the Future that
    ``write_message`` returns resolves once its bytes are out of tornado's hands."""

    unsent_bytes = 0
    behind = False
    counting = True  # off while terminado replays a terminal's recent output

    def backlog_limit(self) -> int:
        return self.settings.get(BACKLOG_SETTING, DEFAULT_BACKLOG_BYTES)

    def write_message(self, message, binary=False):
        if self.ws_connection is None or self.ws_connection.is_closing() or self.behind:
            return None  # closing, or too far behind: terminado writes on regardless
        if not self.counting:
            return super().write_message(message, binary=binary)
        size = len(message.encode() if isinstance(message, str) else message)
        # One message alone always goes: the limit bounds the backlog, not a message.
        if self.unsent_bytes and self.unsent_bytes + size > self.backlog_limit():
            self.fall_behind()
            return None
        written = super().write_message(message, binary=binary)
        self.unsent_bytes += size
        written.add_done_callback(lambda future: self.written(future, size))
        return written

    def written(self, future, size: int) -> None:
        if not future.cancelled():
            future.exception()  # a closed socket's write: nothing to report
        self.unsent_bytes -= size
        if self.behind and not self.unsent_bytes and self.ws_connection is not None:
            self.close(SLOW_VIEWER_CLOSE_CODE, SLOW_VIEWER_REASON)

    def fall_behind(self) -> None:
        self.behind = True
        self.log.warning(
            "Code Pilot: a viewer of a terminal fell %d bytes behind (limit %d): "
            "no more output to it; it is closed to reattach once that is sent",
            self.unsent_bytes,
            self.backlog_limit(),
        )


class WorkspaceTermSocket(TermSocket, BoundedWrites):
    """jupyter-server-terminals' terminal websocket with bounded writes (``BoundedWrites``
    comes after terminado's handler in the MRO, so it sees every write the others make)."""

    replaying = False

    def open(self, *args, **kwargs):
        # terminado replays the terminal's recent output as the socket opens: bounded by
        # the terminal's scrollback, sent once. The limit is on the live output after it.
        self.counting = False
        self.replaying = True
        try:
            super().open(*args, **kwargs)
        finally:
            self.counting = True
            self.replaying = False

    def on_pty_read(self, text: str) -> None:
        # Within ``open`` the only output is the replay (the pty's reads come from the
        # event loop, after it).
        super().on_pty_read(REPLAY_RESET + text if self.replaying else text)


def viewer_backlog(websocket) -> dict:
    """What one viewer costs the server now, as the run's API shows it."""
    return {
        "unsent_bytes": getattr(websocket, "unsent_bytes", None),
        "behind": getattr(websocket, "behind", False),
    }
