"""Live pairing in Chromium, one story on one hub with workspaces in S3: a student and
her teacher (who opens the student's server as the class page's Open IDE does) edit
``app.py`` together. What one types the other's editor shows; both typing in one line
end with the same text; each sees the other's cursor labelled with the hub user name;
S3 holds the converged text; a ``sed -i`` in the student's terminal, which the teacher
shares, reaches both editors; a third student is refused the server, its document's
session and its room. Her server stopped and started through the hub's API, both pages
reopen on the saved text, once, and pair again; a notebook's cell pairs the same way."""

import json
import re

import pytest
from playwright.sync_api import expect

from ..support.hubtools import login, save_text, start_hub, wait_until
from ..support.s3server import s3_server_fixture
from ..support.terminals import connect_terminal, run_in_terminal
from .conftest import HUB
from .ide_attack import open_server
from .lab import (
    FILE_EDITOR,
    UI_TIMEOUT_MS,
    fetch_in_page,
    fill_login_form,
    open_file_in_editor,
    type_at_end,
    wait_for_lab,
)

TEACHER, TEACHER_PASSWORD = "tess", "teacher-password"
STUDENT, OUTSIDER = "maya", "omar"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
BUCKET, PREFIX = "pairing", "cp"
WORKSPACE = f"{PREFIX}/users/{STUDENT}/default"
APP_PY = f"{WORKSPACE}/app.py"
NOTEBOOK = "pairs.ipynb"
CELL_EDITOR = ".jp-NotebookPanel:visible .jp-Cell .jp-InputArea-editor .cm-content"
# What jupyter-server-ydoc logs when a room's document comes from its store.
YSTORE_LOADED = "loaded from the ystore"
# A save reaches S3 a second after the last edit: a generous bound for a shared machine.
S3_TIMEOUT_S = 60

s3 = s3_server_fixture(buckets=(BUCKET,))

# A websocket the page opens to a document's room: whether it opened, and how it closed.
JOIN_ROOM = """async (url) => await new Promise((resolve) => {
  const socket = new WebSocket(url);
  socket.onopen = () => { socket.close(); resolve("open"); };
  socket.onclose = (event) => resolve(`closed ${event.code}`);
})"""


@pytest.fixture(scope="module")
def pairing_hub(request, s3):
    hub = start_hub(
        env={
            **s3.env,
            "CODEPILOT_S3_BUCKET": BUCKET,
            "CODEPILOT_S3_PREFIX": PREFIX,
            "CODEPILOT_S3_ENDPOINT_URL": s3.endpoint_url,
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
        }
    )
    request.config.stash[HUB] = hub
    for name in (STUDENT, OUTSIDER):
        login(hub, name)  # in the class
    hub.start_server(STUDENT)
    yield hub
    hub.stop()
    del request.config.stash[HUB]


def signed_in(new_context, hub, user: str, password: str):
    page = new_context(user).new_page()
    page.goto(f"{hub.url}/hub/login")
    fill_login_form(page, user, password)
    page.wait_for_url(lambda url: "/hub/login" not in url)
    return page


def editor_text(page) -> str:
    return page.locator(FILE_EDITOR).inner_text()


def remote_cursor_name(page):
    """The name on the other person's cursor in the editor of ``page`` (one file open):
    its flag is a CodeMirror tooltip, which JupyterLab mounts outside the editor."""
    return page.locator(".jp-remote-userFlag-name")


def s3_text(s3, key: str = APP_PY) -> str | None:
    body = s3.read(BUCKET, key)
    return None if body is None else body.decode()


def wait_for_s3_text(s3, text: str) -> None:
    wait_until(
        lambda: (s3_text(s3) or "").rstrip("\n") == text.rstrip("\n"),
        S3_TIMEOUT_S,
        0.5,
        f"S3 to hold {text!r}",
    )


def wait_for_same_text(pages, selector: str, what: str) -> str:
    def same():
        texts = {page.locator(selector).inner_text().rstrip("\n") for page in pages}
        return texts.pop() if len(texts) == 1 else None

    return wait_until(same, 30, 0.2, f"{what} to converge")


def one_cell_notebook(source: str) -> dict:
    """A notebook of one code cell; its kernel named, so JupyterLab asks for none."""
    cell = {"cell_type": "code", "execution_count": None, "id": "pair", "metadata": {}}
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {
        "cells": [{**cell, "outputs": [], "source": source}],
        "metadata": {"kernelspec": kernel},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def restart_and_pair_again(hub, s3, student, teacher) -> None:
    """Her server stopped and started through the hub's REST API: both pages, reopened,
    show the file as saved, once (the document restored from the ystore in
    ``.codepilot/collaboration/`` is not doubled), and what one types reaches the other."""
    saved = editor_text(student).rstrip("\n")
    wait_for_s3_text(s3, saved)
    restored_before = hub.log().count(YSTORE_LOADED)
    hub.stop_server(STUDENT)
    hub.start_server(STUDENT)
    for page in (student, teacher):
        # Through the hub's authorization again, approving it if the hub asks.
        open_server(page, f"{hub.server_url(STUDENT)}lab/tree/app.py")
        wait_for_lab(page)
        expect(page.locator(FILE_EDITOR)).to_contain_text("log('hello')", timeout=UI_TIMEOUT_MS)
        wait_until(
            lambda page=page: editor_text(page).rstrip("\n") == saved, 30, 0.2, "the saved text"
        )
        expect(page.locator(".jp-Dialog")).to_have_count(0)
    # What they see came from the ystore (the library logs it), not only from the file.
    wait_until(
        lambda: hub.log().count(YSTORE_LOADED) > restored_before, 30, 0.5, "the ystore's document"
    )

    type_at_end(teacher, "\ny = 2")
    expect(student.locator(FILE_EDITOR)).to_contain_text("y = 2", timeout=UI_TIMEOUT_MS)
    converged = wait_for_same_text((student, teacher), FILE_EDITOR, "app.py")
    assert converged == f"{saved}\ny = 2", converged
    wait_for_s3_text(s3, converged)


def pair_on_a_notebook(hub, s3, student, teacher, headers: dict) -> None:
    """A notebook created through the contents API: a cell one of them edits shows in the
    other's notebook, and the notebook saved to S3 holds the converged cell."""
    server = hub.server_url(STUDENT)
    created = hub.session.put(
        f"{server}api/contents/{NOTEBOOK}",
        headers=headers,
        json={"type": "notebook", "content": one_cell_notebook("total = 1")},
        timeout=30,
    )
    created.raise_for_status()
    for page in (student, teacher):
        page.goto(f"{server}lab/tree/{NOTEBOOK}")
        wait_for_lab(page)
        expect(page.locator(CELL_EDITOR)).to_have_text("total = 1", timeout=UI_TIMEOUT_MS)
    type_at_end(student, " + 41", CELL_EDITOR)
    expect(teacher.locator(CELL_EDITOR)).to_have_text("total = 1 + 41", timeout=UI_TIMEOUT_MS)
    type_at_end(teacher, "\nprint(total)", CELL_EDITOR)
    expect(student.locator(CELL_EDITOR)).to_contain_text("print(total)", timeout=UI_TIMEOUT_MS)
    converged = wait_for_same_text((student, teacher), CELL_EDITOR, "the cell")
    assert converged == "total = 1 + 41\nprint(total)", converged

    def saved_cell() -> str | None:
        body = s3_text(s3, f"{WORKSPACE}/{NOTEBOOK}")
        source = json.loads(body)["cells"][0]["source"] if body else None
        return "".join(source) if isinstance(source, list) else source

    wait_until(lambda: saved_cell() == converged, S3_TIMEOUT_S, 0.5, "S3 to hold the cell")


def test_a_student_and_her_teacher_edit_app_py_together(pairing_hub, s3, new_context, evidence):
    hub, server = pairing_hub, pairing_hub.server_url(STUDENT)
    admin = {"Authorization": f"token {hub.token}"}
    assert save_text(server, "app.py", "print('hello')\n", admin).status_code in (200, 201)
    student = signed_in(new_context, hub, STUDENT, PASSWORD)
    teacher = signed_in(new_context, hub, TEACHER, TEACHER_PASSWORD)
    # One page each (a page left behind stays a collaborator until its heartbeat ends).
    open_server(teacher, f"{server}lab/tree/app.py")
    wait_for_lab(teacher)
    open_file_in_editor(student, server, "app.py")
    for page in (student, teacher):
        expect(page.locator(FILE_EDITOR)).to_contain_text("print('hello')", timeout=UI_TIMEOUT_MS)

    # The student types; the teacher's editor shows it, unsaved and unreloaded.
    type_at_end(student, "x = 1")
    expect(teacher.locator(FILE_EDITOR)).to_contain_text("x = 1", timeout=UI_TIMEOUT_MS)
    # Her cursor in the teacher's editor carries her hub user name.
    expect(remote_cursor_name(teacher)).to_have_text(STUDENT, timeout=UI_TIMEOUT_MS)

    # Both type in the same line at once: both end with the same text, both words in it.
    teacher.locator(FILE_EDITOR).click()
    teacher.keyboard.press("Control+End")
    teacher.keyboard.type("  # T", delay=5)
    student.keyboard.type("  # S", delay=5)
    for page in (student, teacher):
        expect(page.locator(FILE_EDITOR)).to_contain_text("# T", timeout=UI_TIMEOUT_MS)
        expect(page.locator(FILE_EDITOR)).to_contain_text("# S", timeout=UI_TIMEOUT_MS)
    wait_until(lambda: editor_text(student) == editor_text(teacher), 30, 0.2, "converged")
    expect(remote_cursor_name(student)).to_have_text(TEACHER, timeout=UI_TIMEOUT_MS)
    # The collaborators panel lists who else is here (once), by hub user name after
    # the initial on the icon.
    student.get_by_role("tab", name="Collaboration").click()
    expect(student.locator(".jp-CollaboratorsList .jp-CollaboratorHeader")).to_have_text(
        [re.compile(rf"^{TEACHER[0]}{TEACHER}$")], timeout=UI_TIMEOUT_MS
    )
    evidence.screenshot(teacher, "pairing-teacher-sees-maya")
    evidence.screenshot(student, "pairing-student-sees-tess")

    # Saved through the workspace's contents manager: S3 holds the converged text.
    converged = editor_text(student)
    assert converged.count("x = 1") == 1
    wait_for_s3_text(s3, converged)

    # A terminal of the student's, which the teacher's connection shares (terminado's
    # named terminal): her sed -i reaches both editors; he sees her command's output.
    created = hub.session.post(f"{server}api/terminals", headers=admin, timeout=30)
    created.raise_for_status()
    name = created.json()["name"]
    teacher_token = hub.user_token(TEACHER)
    with (
        connect_terminal(server, hub.user_token(STUDENT), name) as hers,
        connect_terminal(server, teacher_token, name) as his,
    ):
        run_in_terminal(hers, "sed -i 's/print/log/' app.py; echo SED-$((1+1))", "SED-2")
        his.send(json.dumps(["stdin", "echo SHARED-$((2+3))\r"]))
        shown = ""
        while "SHARED-5" not in shown:
            message = json.loads(hers.recv(timeout=30))
            shown += message[1] if message[0] == "stdout" else ""
    for page in (student, teacher):
        expect(page.locator(FILE_EDITOR)).to_contain_text("log('hello')", timeout=UI_TIMEOUT_MS)
        expect(page.locator(FILE_EDITOR)).not_to_contain_text("print(")

    # A third student of the class: the hub refuses her the server, the document's
    # session and its room (the real room id, as if guessed).
    session = hub.session.put(
        f"{server}api/collaboration/session/app.py",
        headers=admin,
        json={"format": "text", "type": "file"},
        timeout=30,
    )
    session.raise_for_status()
    room = f"{server}api/collaboration/room/text:file:{session.json()['fileId']}"
    outsider = signed_in(new_context, hub, OUTSIDER, PASSWORD)
    refused = outsider.goto(f"{server}lab")
    assert refused.status == 403, (refused.status, outsider.url)
    # From a page of the student's server (its origin, whatever cookies she holds there).
    assert outsider.goto(f"{server}api/contents").status == 403
    outsider.goto(f"{server}static/favicon.ico")
    body = json.dumps({"format": "text", "type": "file"})
    reply = fetch_in_page(outsider, "PUT", f"{server}api/collaboration/session/app.py", body=body)
    assert reply["status"] == 403 and "fileId" not in reply["text"], reply
    joined = outsider.evaluate(JOIN_ROOM, re.sub(r"^http", "ws", room))
    assert joined.startswith("closed"), joined

    restart_and_pair_again(hub, s3, student, teacher)
    pair_on_a_notebook(hub, s3, student, teacher, admin)
