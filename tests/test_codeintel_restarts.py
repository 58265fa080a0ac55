"""What a language server's crash leads to, as pure logic: the restart budget, the words
of a stop and what a fresh process is told."""

import signal

from server_extension.codeintel import python_server_spec
from server_extension.codeintel.restarts import (
    REPLAYED_INITIALIZE_ID,
    REQUEST_FAILED,
    EditorConversation,
    RestartBudget,
    describe_exit,
    stop_message,
)


def test_one_restart_within_the_window_then_one_again_once_it_passed():
    budget = RestartBudget(restarts=1, window=300)
    assert budget.allows_restart(now=1000)
    assert not budget.allows_restart(now=1100)  # the second crash within 5 min
    assert not budget.allows_restart(now=1299)
    assert budget.allows_restart(now=1300)
    assert not RestartBudget(restarts=0, window=300).allows_restart(now=0)


def test_a_stop_says_which_language_server_and_why():
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(1) == "exited with status 1"
    assert describe_exit(-200) == "killed by signal 200"
    message = stop_message(python_server_spec(), describe_exit(-9), restarts=1, window=300)
    assert message == (
        "Python language server stopped: killed by SIGKILL (after 1 restart within 5 min)"
    )
    tsls = {"languages": ["javascript", "jsx"]}
    assert stop_message(tsls, "exited with status 3", 0, 30).startswith(
        "JavaScript language server stopped: exited with status 3"
    )


def request(request_id, method, params=None):
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}


def notification(method, params):
    return {"jsonrpc": "2.0", "method": method, "params": params}


def document_change(uri, version, *changes):
    return notification(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": version}, "contentChanges": list(changes)},
    )


def test_a_fresh_process_hears_the_handshake_and_each_open_documents_latest_text():
    talk = EditorConversation()
    talk.from_client(request(0, "initialize", {"rootUri": "file:///home/lena"}))
    talk.from_server({"jsonrpc": "2.0", "id": 0, "result": {"capabilities": {}}})
    talk.from_client(notification("initialized", {}))
    talk.from_client(notification("workspace/didChangeConfiguration", {"settings": {"a": 1}}))
    app, old = "file:///home/lena/app.py", "file:///home/lena/old.py"
    for uri in (app, old):
        item = {"uri": uri, "languageId": "python", "version": 0, "text": "import os\n"}
        talk.from_client(notification("textDocument/didOpen", {"textDocument": item}))
    talk.from_client(document_change(app, 1, {"text": "import os\nos.pa"}))
    # A change of a range (JupyterLab sends none) does not replace the whole text.
    ranged = {"range": {"start": {"line": 0, "character": 0}}, "text": "x"}
    talk.from_client(document_change(app, 2, ranged))
    talk.from_client(notification("textDocument/didClose", {"textDocument": {"uri": old}}))
    talk.from_client(request(7, "textDocument/completion", {"textDocument": {"uri": app}}))

    # The completion waits on the dead process: the editors get it failed, once.
    (failed,) = talk.failed_requests("killed by SIGKILL")
    assert failed["id"] == 7 and failed["error"]["code"] == REQUEST_FAILED
    assert "killed by SIGKILL" in failed["error"]["message"]
    assert talk.failed_requests("again") == []

    initialize, initialized, configuration, reopened = talk.replay()
    # Answered already: repeated under an id the editors are not waiting on.
    assert initialize["id"] == REPLAYED_INITIALIZE_ID
    assert initialize["params"] == {"rootUri": "file:///home/lena"}
    assert initialized["method"] == "initialized"
    assert configuration["params"] == {"settings": {"a": 1}}
    assert reopened["method"] == "textDocument/didOpen"
    assert reopened["params"]["textDocument"] == {
        "uri": app,
        "languageId": "python",
        "version": 1,
        "text": "import os\nos.pa",
    }


def test_an_initialize_still_unanswered_is_repeated_under_its_own_id():
    talk = EditorConversation()
    talk.from_client(request(0, "initialize", {"rootUri": "file:///w"}))
    assert talk.failed_requests("exited with status 1") == []
    (initialize,) = talk.replay()
    assert initialize["id"] == 0  # the editors' own request gets the fresh answer
    talk.forget()
    assert talk.replay() == [] and talk.pending == {}
