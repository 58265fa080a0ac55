"""What a language server's crash leads to, apart from processes and sockets: whether it is
restarted, what its fresh process is told so that the editors' open connection goes on,
and the words the status bar shows when it is not restarted.

JupyterLab's LSP client keeps one websocket per language server and never reconnects
when it closes, nor sends ``initialize`` again: a restart must happen behind that socket,
with the server repeating to the fresh process what the editors told the dead one.
"""

import signal
import time
from collections import deque
from dataclasses import dataclass, field

# LSP 3.17's RequestFailed: the request was valid, its server could not answer it.
REQUEST_FAILED = -32803
# Names the ``initialize`` request the server sends itself; the editors ignore its answer
# (a response to an id they are not waiting on).
REPLAYED_INITIALIZE_ID = "codepilot-restart"

# How the status bar names a language server, by the first language of its spec.
LANGUAGE_LABELS = {"python": "Python", "javascript": "JavaScript", "typescript": "TypeScript"}


@dataclass
class RestartBudget:
    """At most ``restarts`` restarts within any ``window`` seconds."""

    restarts: int
    window: float
    _restarted_at: deque = field(default_factory=deque)

    def allows_restart(self, now: float | None = None) -> bool:
        """Whether a crash at ``now`` may be restarted; counts the restart when it may."""
        now = time.monotonic() if now is None else now
        while self._restarted_at and now - self._restarted_at[0] >= self.window:
            self._restarted_at.popleft()
        if len(self._restarted_at) >= self.restarts:
            return False
        self._restarted_at.append(now)
        return True


def describe_exit(returncode: int) -> str:
    """A process's end as a person reads it: ``killed by SIGKILL``, ``exited with status 1``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def language_label(spec: dict) -> str:
    """``Python`` for pylsp's spec: its first language, as people write it."""
    languages = spec.get("languages") or []
    if not languages:
        return spec.get("display_name") or "The"
    return LANGUAGE_LABELS.get(languages[0], languages[0].capitalize())


def stop_message(spec: dict, reason: str, restarts: int, window: float) -> str:
    """What the status bar says of a language server that is not restarted."""
    within = f"{window / 60:g} min" if window >= 60 else f"{window:g} s"
    restarted = f"after {restarts} restart{'s' if restarts != 1 else ''}" if restarts else ""
    when = f" ({restarted} within {within})" if restarted else ""
    return f"{language_label(spec)} language server stopped: {reason}{when}"


@dataclass
class EditorConversation:
    """What the editors told one language server that a fresh process must hear again:
    their ``initialize`` and ``initialized``, the last configuration and each open
    document's latest text; and which of their requests wait on an answer.

    JupyterLab sends a document's whole text at every change; a change of a range (which
    it does not send) leaves the text as it was last known whole.
    """

    initialize: dict | None = None
    initialized: bool = False
    configuration: dict | None = None
    documents: dict = field(default_factory=dict)  # uri -> TextDocumentItem
    pending: dict = field(default_factory=dict)  # request id -> method

    def from_client(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params") or {}
        if "id" in message and method:
            self.pending[message["id"]] = method
        if method == "initialize":
            self.initialize = message
        elif method == "initialized":
            self.initialized = True
        elif method == "workspace/didChangeConfiguration":
            self.configuration = params
        elif method == "textDocument/didOpen":
            item = params["textDocument"]
            self.documents[item["uri"]] = dict(item)
        elif method == "textDocument/didChange":
            document = self.documents.get(params["textDocument"]["uri"])
            whole = [change for change in params["contentChanges"] if "range" not in change]
            if document is not None and whole:
                document["text"] = whole[-1]["text"]
                document["version"] = params["textDocument"].get("version", document["version"])
        elif method == "textDocument/didClose":
            self.documents.pop(params["textDocument"]["uri"], None)

    def from_server(self, message: dict) -> None:
        if "id" in message and "method" not in message:
            self.pending.pop(message["id"], None)

    def forget(self) -> None:
        """The editors left: the next ones start their own conversation."""
        self.__init__()

    def failed_requests(self, reason: str) -> list[dict]:
        """Error answers to the editors' waiting requests (their ``initialize``, if not
        answered yet, is kept: ``replay`` repeats it under its own id)."""
        failed = [
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": REQUEST_FAILED, "message": f"the language server {reason}"},
            }
            for request_id, method in self.pending.items()
            if method != "initialize"
        ]
        self.pending = {i: m for i, m in self.pending.items() if m == "initialize"}
        return failed

    def replay(self) -> list[dict]:
        """The messages that bring a fresh process to where the dead one was."""
        if self.initialize is None:
            return []
        initialize = self.initialize
        if initialize["id"] not in self.pending:  # answered: the answer is not repeated
            initialize = {**initialize, "id": REPLAYED_INITIALIZE_ID}
        messages = [initialize]
        if self.initialized:
            messages.append(notification("initialized", {}))
        if self.configuration is not None:
            messages.append(notification("workspace/didChangeConfiguration", self.configuration))
        for document in self.documents.values():
            messages.append(notification("textDocument/didOpen", {"textDocument": document}))
        return messages


def notification(method: str, params: dict) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params}
