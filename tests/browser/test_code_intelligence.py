"""Code intelligence in real Chromium, against the one-machine hub: in a student's flask
starter, pylsp underlines an undefined name, completion as you type (JupyterLab's default)
offers its items, hover shows a signature and go to definition jumps;
typescript-language-server underlines an undefined name in the react-vite starter's
App.jsx. The language servers start only once a file of
theirs is opened, as children of the user's server in its sandbox, and end with it; one
that crashes is restarted once behind the open editor, then reported in the status bar.
Packages the student installs in a terminal (``npm install``, ``pip install`` in the
workspace's venv) complete in the editor with no restart; a 5 MB file, a file that is
not UTF-8 and a folder of 20,000 files do not hang the server or the editor.
"""

import base64
import io
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..support.hubtools import wait_until
from ..support.langservers import cgroup, language_server_processes, net_namespace
from ..support.npmcache import fill_npm_cache, give_npm_cache
from .lab import (
    FILE_EDITOR,
    NPM_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    Terminal,
    dismiss_news_prompt,
    dock_tab,
    fetch_in_page,
    log_in,
    make_terminal_readable,
    open_file_in_editor,
    start_from_spawn_form,
    type_at_end,
    wait_for_lab,
)

pytestmark = pytest.mark.browser

REACT_STARTER = Path(__file__).resolve().parents[2] / "server_extension/starters/react-vite"

STUDENT = "lena"
PASSWORD = "class-password"  # what tests/support/hubtools.start_hub sets
# A language server's first answer includes its start (pylsp imports jedi and ruff).
LSP_TIMEOUT_MS = 60_000
COMPLETER_MANAGER = "@jupyterlab/completer-extension:manager"
LSP_COMPLETION = "@jupyter-lsp/jupyterlab-lsp:completion"

# The rectangle of a word in a CodeMirror line, from its text nodes.
WORD_BOX = """([line, word]) => {
  const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
  let text = "", nodes = [];
  while (walker.nextNode()) {
    nodes.push([walker.currentNode, text.length]);
    text += walker.currentNode.data;
  }
  const at = text.indexOf(word);
  if (at < 0) return null;
  const [node, start] = nodes.filter(([, offset]) => offset <= at).pop();
  const range = document.createRange();
  range.setStart(node, at - start);
  range.setEnd(node, Math.min(node.data.length, at - start + word.length));
  const box = range.getBoundingClientRect();
  return {x: box.x + box.width / 2, y: box.y + box.height / 2};
}"""


def word_position(page: Page, line_text: str, word: str) -> dict:
    line = page.locator(f"{FILE_EDITOR} .cm-line", has_text=line_text).last
    line.scroll_into_view_if_needed()
    position = line.evaluate(WORD_BOX.replace("([line, word])", "(line, word)"), word)
    assert position, f"{word!r} not on the line {line_text!r}"
    return position


def wait_for_language_server(page: Page) -> None:
    """jupyterlab-lsp's status item says so once the file's language server answers."""
    expect(page.locator(".jp-StatusBar-Widget", has_text="Fully initialized").first).to_be_visible(
        timeout=LSP_TIMEOUT_MS
    )


def lab_setting_defaults(page: Page, server_url: str, plugin: str) -> dict:
    """The defaults of a JupyterLab plugin's settings, as the server serves its schema."""
    reply = fetch_in_page(page, "GET", f"{server_url}lab/api/settings/{plugin}")
    assert reply["status"] == 200, reply
    properties = json.loads(reply["text"])["schema"]["properties"]
    return {name: schema.get("default") for name, schema in properties.items()}


def account_uid(hub, user: str) -> int:
    return pwd.getpwnam(hub.account(user)).pw_uid


def lsp_sessions(page: Page, server_url: str) -> dict:
    reply = fetch_in_page(page, "GET", f"{server_url}lsp/status")
    assert reply["status"] == 200, reply
    return {
        name: session["status"] for name, session in json.loads(reply["text"])["sessions"].items()
    }


@pytest.fixture(scope="module")
def lab(plain_hub, new_context) -> Page:
    page = new_context(STUDENT).new_page()
    log_in(page, plain_hub.url, STUDENT, PASSWORD)
    start_from_spawn_form(page, "flask")
    wait_for_lab(page)
    dismiss_news_prompt(page)
    return page


def test_python_errors_underlined_by_a_lazy_language_server_in_the_sandbox(plain_hub, lab):
    page, server_url = lab, plain_hub.server_url(STUDENT)
    uid = account_uid(plain_hub, STUDENT)
    # JupyterLab is open, no code file yet: no language server runs, none was started.
    assert language_server_processes(uid) == []
    sessions = lsp_sessions(page, server_url)
    assert set(sessions) >= {"pylsp", "typescript-language-server"}, sessions
    assert set(sessions.values()) == {"not_started"}, sessions

    open_file_in_editor(page, server_url, "app.py")
    assert "os.path" not in page.locator(FILE_EDITOR).inner_text()  # no word to complete from
    wait_for_language_server(page)

    # pylsp runs now: a child of the user's server, as the user, in its cgroup and network.
    (pylsp,) = [p for p in language_server_processes(uid) if p.name == "pylsp"]
    assert cgroup(pylsp.pid) == cgroup(pylsp.ppid)
    assert net_namespace(pylsp.pid) == net_namespace(pylsp.ppid)
    with open(f"/proc/{pylsp.ppid}/environ", "rb") as environ:
        assert f"JUPYTERHUB_USER={STUDENT}".encode() in environ.read().split(b"\0")
    assert lsp_sessions(page, server_url)["pylsp"] == "started"
    assert lsp_sessions(page, server_url)["typescript-language-server"] == "not_started"

    # Completion as you type is the default: JupyterLab's completer and jupyterlab-lsp's
    # continuous hinting, as the settings API serves their schemas to this student.
    assert lab_setting_defaults(page, server_url, COMPLETER_MANAGER)["autoCompletion"] is True
    assert lab_setting_defaults(page, server_url, LSP_COMPLETION)["continuousHinting"] is True
    # pylsp answers a completion in 1 to 7 s on a busy machine (one request a keystroke,
    # answered in turn); JupyterLab drops a provider's answer after its default 1 s.
    assert lab_setting_defaults(page, server_url, COMPLETER_MANAGER)["providerTimeout"] >= 5000

    # An undefined name: underlined, and the underline's message names it.
    type_at_end(page, '\nprnt("x")\nstarted()\n')
    underline = page.locator(f"{FILE_EDITOR} .cm-lintRange", has_text="prnt")
    expect(underline.first).to_be_visible(timeout=LSP_TIMEOUT_MS)
    page.mouse.move(**word_position(page, 'prnt("x")', "prnt"))
    expect(page.locator(".cm-tooltip-lint").first).to_contain_text("prnt", timeout=UI_TIMEOUT_MS)

    # Completion as you type, in an editor opened after JupyterLab started: pylsp's items
    # show in JupyterLab's completer.
    page.mouse.move(0, 0)  # the lint tooltip closes
    type_at_end(page, "import os\nos.pa")
    completion = page.locator(".jp-Completer-item", has_text="path")
    expect(completion.first).to_be_visible(timeout=LSP_TIMEOUT_MS)
    page.keyboard.press("Escape")

    # Hover: Flask's signature, from pylsp.
    page.mouse.move(**word_position(page, "app = Flask(__name__)", "Flask"))
    expect(page.locator(".lsp-hover").first).to_contain_text("import_name", timeout=LSP_TIMEOUT_MS)

    # Go to definition of a local function: the cursor moves to its ``def`` line.
    page.mouse.click(**word_position(page, "started()", "started"))
    page.keyboard.press("Control+b")
    wait_until(
        lambda: "def started" in cursor_line(page), LSP_TIMEOUT_MS / 1000, 0.2, "jumped to def"
    )


def cursor_line(page: Page) -> str:
    """The text of the editor line that holds the cursor (CodeMirror mirrors it in the DOM
    selection while the editor has focus)."""
    return page.evaluate(
        """() => {
          const node = document.getSelection().focusNode;
          const element = node && (node.nodeType === 1 ? node : node.parentElement);
          const line = element && element.closest(".cm-line");
          return line ? line.textContent : "";
        }"""
    )


def test_jsx_undefined_name_underlined_by_typescript_language_server(plain_hub, lab):
    """The react-vite starter's jsconfig.json and App.jsx, beside the flask starter (one
    server for the module): tsserver checks the JSX, with no node_modules in the folder."""
    page, server_url = lab, plain_hub.server_url(STUDENT)
    for folder in ("web", "web/src"):
        put_file(page, server_url, folder, None)
    put_file(page, server_url, "web/jsconfig.json", (REACT_STARTER / "jsconfig.json").read_bytes())
    app = (REACT_STARTER / "src" / "App.jsx").read_text()
    assert "{count} times" in app and "countr" not in app
    typo = app.replace("{count} times", "{countr} times").encode()
    put_file(page, server_url, "web/src/App.jsx", typo)
    open_file_in_editor(page, server_url, "web/src/App.jsx")
    underline = page.locator(f"{FILE_EDITOR} .cm-lintRange", has_text="countr")
    expect(underline.first).to_be_visible(timeout=LSP_TIMEOUT_MS)
    page.mouse.move(**word_position(page, "{countr}", "countr"))
    expect(page.locator(".cm-tooltip-lint").first).to_contain_text("countr", timeout=UI_TIMEOUT_MS)
    uid = account_uid(plain_hub, STUDENT)
    assert "typescript-language-server" in {p.name for p in language_server_processes(uid)}


def put_file(page: Page, server_url: str, path: str, data: bytes | None) -> None:
    """Write a file (``data``) or make a folder (None) through the contents API."""
    model = {"type": "directory"}
    if data is not None:
        model = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
    reply = fetch_in_page(
        page,
        "PUT",
        f"{server_url}api/contents/{path}",
        {"Content-Type": "application/json"},
        json.dumps(model),
    )
    assert reply["status"] in (200, 201), reply


def pylsp_pids(uid: int) -> list[int]:
    return [p.pid for p in language_server_processes(uid) if p.name == "pylsp"]


def test_a_crashed_language_server_is_restarted_once_then_reported(plain_hub, lab):
    page, server_url = lab, plain_hub.server_url(STUDENT)
    uid = account_uid(plain_hub, STUDENT)
    put_file(page, server_url, "crash.py", b"import os\n")
    open_file_in_editor(page, server_url, "crash.py")
    wait_for_language_server(page)
    (first,) = pylsp_pids(uid)

    # The first crash: a fresh pylsp behind the same connection knows the open file.
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: pylsp_pids(uid) not in ([], [first]), 30, 0.2, "pylsp restarted")
    (second,) = pylsp_pids(uid)
    type_at_end(page, "os.pa")
    completion = page.locator(".jp-Completer-item", has_text="path")
    expect(completion.first).to_be_visible(timeout=LSP_TIMEOUT_MS)
    page.keyboard.press("Escape")

    # The second within the window: not restarted, and the status bar says why.
    os.kill(second, signal.SIGKILL)
    stopped = page.locator("#jp-main-statusbar", has_text="Python language server stopped")
    expect(stopped).to_contain_text("killed by SIGKILL", timeout=UI_TIMEOUT_MS)
    assert pylsp_pids(uid) == []
    # The editor works on: typing and saving.
    type_at_end(page, "th\nprint('still typing')\n")
    page.keyboard.press("Control+s")
    wait_until(
        lambda: "print('still typing')" in saved_text(page, server_url, "crash.py"),
        30,
        0.2,
        "the typed text saved",
    )
    assert pylsp_pids(uid) == []


def saved_text(page: Page, server_url: str, path: str) -> str:
    reply = fetch_in_page(page, "GET", f"{server_url}api/contents/{path}?content=1")
    assert reply["status"] == 200, reply
    return json.loads(reply["text"])["content"]


def api_answers_within(page: Page, server_url: str, seconds: float) -> float:
    """Seconds the server took to answer its status API, the slowest of a few tries."""
    slowest = 0.0
    for _ in range(5):
        started = time.monotonic()
        reply = fetch_in_page(page, "GET", f"{server_url}api/status")
        slowest = max(slowest, time.monotonic() - started)
        assert reply["status"] == 200, reply
    assert slowest < seconds, f"the server's API took {slowest:.1f} s"
    return slowest


def wheel_of(package: str, source: str) -> tuple[str, bytes]:
    """A pure-Python wheel of one module, ``package/__init__.py`` holding ``source``: its
    file name and bytes (what pip installs with no registry)."""
    info = f"{package}-1.0.dist-info"
    files = {
        f"{package}/__init__.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return f"{package}-1.0-py3-none-any.whl", archive.getvalue()


def completer_offers(page: Page, typed: str, item: str) -> None:
    """Type ``typed`` at the end of the editor on screen: the completer lists ``item``."""
    assert item not in page.locator(FILE_EDITOR).inner_text()  # no word to complete from
    type_at_end(page, typed)
    completion = page.locator(".jp-Completer-item", has_text=item)
    expect(completion.first).to_be_visible(timeout=LSP_TIMEOUT_MS)
    page.keyboard.press("Escape")


def test_packages_installed_in_a_terminal_complete_with_no_restart(plain_hub, lab):
    """With App.jsx open and both language servers running, the student runs ``npm
    install`` in web/ and ``pip install`` in a venv of the workspace (the flask starter's
    README's way: the one-machine server's own environment is not theirs to write): React
    and the new package complete, from the same language servers."""
    page, server_url = lab, plain_hub.server_url(STUDENT)
    fill_npm_cache("react-vite")
    give_npm_cache(plain_hub.data_dir / "homes" / STUDENT)
    for folder in ("web", "web/src"):  # the JSX test's, if it ran
        put_file(page, server_url, folder, None)
    for name in ("package.json", "package-lock.json", "jsconfig.json"):
        put_file(page, server_url, f"web/{name}", (REACT_STARTER / name).read_bytes())
    put_file(page, server_url, "web/src/App.jsx", (REACT_STARTER / "src/App.jsx").read_bytes())
    wheel, data = wheel_of("campus_weather", 'def forecast_tomorrow(city):\n    """Rain."""\n')
    put_file(page, server_url, wheel, data)

    make_terminal_readable(page, server_url)  # takes effect at the reload below
    for path in ("app.py", "web/src/App.jsx"):  # JupyterLab reopens app.py with App.jsx
        open_file_in_editor(page, server_url, path)
        wait_for_language_server(page)
    uid = account_uid(plain_hub, STUDENT)
    before = {p.name: p.pid for p in language_server_processes(uid)}
    assert {"pylsp", "typescript-language-server"} <= set(before), before

    terminal = Terminal.open_from_launcher(page)
    install = (  # from the workspace's top: the terminal opens in the file browser's folder
        'cd "$JUPYTER_SERVER_ROOT" && (cd web && npm install --no-audit --no-fund)'
        " && python -m venv --system-site-packages .venv && . .venv/bin/activate"
        f" && pip install --no-index {wheel} && echo INSTALLED-$((6*7))"
    )
    output = terminal.run_and_wait(install, "INSTALLED-42", NPM_TIMEOUT_MS)
    assert "Successfully installed campus-weather" in output, output

    dock_tab(page, "App.jsx").first.click()
    completer_offers(page, '\nimport * as React from "react";\nReact.useTransi', "useTransition")
    dock_tab(page, "app.py").first.click()  # no reload: that would restart both servers
    completer_offers(page, "\nimport campus_weather\ncampus_weather.forec", "forecast_tomorrow")
    after = {p.name: p.pid for p in language_server_processes(uid)}
    assert after == before  # the same language servers: none restarted


def make_files_as(uid: int, folder: Path, count: int) -> None:
    """``count`` small files in ``folder``, written by ``uid`` as a student's unzip would."""
    script = (
        "import sys, pathlib\n"
        "folder = pathlib.Path(sys.argv[1]); folder.mkdir()\n"
        "for n in range(int(sys.argv[2])):\n"
        "    suffix = ('json', 'py', 'js', 'txt')[n % 4]\n"
        "    (folder / f'item_{n:05d}.{suffix}').write_text(f'value_{n} = {n}\\n')\n"
    )
    account = pwd.getpwuid(uid)
    subprocess.run(
        [sys.executable, "-c", script, str(folder), str(count)],
        user=uid,
        group=account.pw_gid,
        check=True,
        timeout=120,
    )


def test_a_folder_of_20000_files_lists_while_the_editor_keeps_working(plain_hub, lab):
    """A student unzips 20,000 files into one folder. Its listing (what the file browser
    asks for) answers, checking the folder inside the workspace once, not once per entry;
    meanwhile the server answers and pylsp underlines a small file beside the folder."""
    page, server_url = lab, plain_hub.server_url(STUDENT)
    folder = plain_hub.data_dir / "workspaces" / STUDENT / "default" / "dataset"
    started = time.monotonic()
    make_files_as(account_uid(plain_hub, STUDENT), folder, 20_000)
    print(f"20,000 files written in {time.monotonic() - started:.1f} s")
    put_file(page, server_url, "check.py", b'prnt("x")\n')

    # A light page of the server's origin whose policy lets it fetch (API answers' do
    # not): the server's own "404" page, not a second JupyterLab.
    lister = page.context.new_page()
    lister.goto(f"{server_url}no-such-page")
    lister.evaluate(
        """url => { window.listing = (async () => {
             const started = performance.now();
             const xsrf = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/)[1];
             const reply = await fetch(url, {headers: {"X-XSRFToken": decodeURIComponent(xsrf)}});
             const model = await reply.json();
             return {status: reply.status, entries: model.content.length,
                     seconds: (performance.now() - started) / 1000};
           })(); }""",
        f"{server_url}api/contents/dataset",
    )
    slowest = api_answers_within(page, server_url, 10)
    started = time.monotonic()
    open_file_in_editor(page, server_url, "check.py")
    underline = page.locator(f"{FILE_EDITOR} .cm-lintRange", has_text="prnt")
    expect(underline.first).to_be_visible(timeout=LSP_TIMEOUT_MS)
    underlined = time.monotonic() - started
    listing = lister.evaluate("window.listing")
    lister.close()
    assert listing["status"] == 200 and listing["entries"] == 20_000, listing
    print(f"listing: {listing['seconds']:.1f} s, the API meanwhile within {slowest * 1000:.0f} ms")
    print(f"check.py opened and underlined in {underlined:.1f} s")


def test_big_and_undecodable_files_do_not_hang_the_server_and_servers_end_with_it(plain_hub, lab):
    page, server_url = lab, plain_hub.server_url(STUDENT)
    big = b"".join(b"value_%d = %d  # padding padding padding\n" % (n, n) for n in range(130_000))
    assert len(big) > 5_000_000
    put_file(page, server_url, "big.py", big)
    put_file(page, server_url, "latin1.py", b'print("caf\xe9")\n\xff\xfe\n')
    for path in ("big.py", "latin1.py"):
        page.goto(f"{server_url}lab/tree/{path}")
        wait_for_lab(page)
        # While pylsp reads and lints it, the server (its event loop) keeps answering.
        slowest = api_answers_within(page, server_url, 10)
        print(f"{path}: the server's API answered within {slowest * 1000:.0f} ms")
    uid = account_uid(plain_hub, STUDENT)
    assert language_server_processes(uid)
    plain_hub.stop_server(STUDENT)
    wait_until(lambda: not language_server_processes(uid), 30, 0.2, "language servers ended")
