"""Live pairing in Chromium: a student and her teacher (from the class page's Open IDE)
on the student's server edit ``app.py`` together: what one types the other's editor
shows, both typing in the same line end with the same text, the teacher's cursor is
labelled with her hub user name, and a third student is refused the server."""

import pytest
from playwright.sync_api import expect

from ..support.hubtools import login, start_hub, wait_until
from .conftest import HUB
from .ide_attack import open_server
from .lab import fill_login_form, open_file_in_editor

TEACHER, TEACHER_PASSWORD = "tess", "teacher-password"
STUDENT, OUTSIDER = "maya", "omar"
EDITOR = ".jp-FileEditor:visible .cm-content"
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def pairing_hub(request):
    hub = start_hub(
        env={"CODEPILOT_TEACHERS": TEACHER, "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD}
    )
    request.config.stash[HUB] = hub
    for name in (STUDENT, OUTSIDER):
        login(hub, name)
    hub.start_server(STUDENT)
    workspace = hub.data_dir / "workspaces" / STUDENT / "default"
    (workspace / "app.py").write_text("print('hello')\n")
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
    return page.locator(EDITOR).inner_text()


def test_student_and_teacher_edit_app_py_together(pairing_hub, new_context, evidence):
    server = pairing_hub.server_url(STUDENT)
    student = signed_in(new_context, pairing_hub, STUDENT, "class-password")
    teacher = signed_in(new_context, pairing_hub, TEACHER, TEACHER_PASSWORD)
    open_server(teacher, f"{server}lab")
    for page in (student, teacher):
        open_file_in_editor(page, server, "app.py")
        expect(page.locator(EDITOR)).to_contain_text("print('hello')", timeout=UI_TIMEOUT_MS)

    # The student types; the teacher's editor shows it, unsaved and unreloaded.
    student.locator(EDITOR).click()
    student.keyboard.press("Control+End")
    student.keyboard.type("x = 1")
    expect(teacher.locator(EDITOR)).to_contain_text("x = 1", timeout=UI_TIMEOUT_MS)

    # Both type in the same line at once: both end with the same text, both words in it.
    teacher.locator(EDITOR).click()
    teacher.keyboard.press("Control+End")
    teacher.keyboard.type("  # T", delay=5)
    student.keyboard.type("  # S", delay=5)
    for page in (student, teacher):
        expect(page.locator(EDITOR)).to_contain_text("# T", timeout=UI_TIMEOUT_MS)
        expect(page.locator(EDITOR)).to_contain_text("# S", timeout=UI_TIMEOUT_MS)
    assert editor_text(student) == editor_text(teacher)

    # The student's cursor (her page focused) in the teacher's editor carries her hub name.
    student.bring_to_front()
    student.locator(EDITOR).click()
    expect(teacher.locator(".cm-ySelectionInfo", has_text=STUDENT)).to_have_count(
        1, timeout=UI_TIMEOUT_MS
    )
    evidence.screenshot(student, "student-sees-teacher")

    # Saved through the workspace contents manager: the file is the converged text.
    app_py = pairing_hub.data_dir / "workspaces" / STUDENT / "default" / "app.py"
    converged = editor_text(student)
    wait_until(
        lambda: app_py.read_text().rstrip("\n") == converged.rstrip("\n"), 30, 0.2, "the save"
    )


def test_a_third_student_cannot_join(pairing_hub, new_context):
    server = pairing_hub.server_url(STUDENT)
    outsider = signed_in(new_context, pairing_hub, OUTSIDER, "class-password")
    response = outsider.goto(f"{server}api/collaboration/session/app.py")
    assert response.status in (403, 404) or "/hub/" in outsider.url
    assert "fileId" not in outsider.content()
