"""What a person does in the hub and in JupyterLab, as Playwright steps.

Every helper goes through the page the way a person would (login form, launcher tiles,
keyboard); the only shortcut is the student's own settings API, used to turn on the
terminal's screen-reader mode so that the terminal's text can be read from the page.
"""

import json
import re
import time
from dataclasses import dataclass, field

from playwright.sync_api import BrowserContext, Locator, Page, expect

# Generous: servers start and files sync on a noisy 2-core machine.
SPAWN_TIMEOUT_MS = 120_000
UI_TIMEOUT_MS = 30_000
# npm and pip download packages the first time.
NPM_TIMEOUT_MS = 300_000


def log_in(page: Page, hub_url: str, username: str, password: str, next_path: str = "") -> None:
    """Fill in the hub's login form and submit it."""
    query = f"?next={next_path}" if next_path else ""
    page.goto(f"{hub_url}/hub/login{query}")
    fill_login_form(page, username, password)


def fill_login_form(page: Page, username: str, password: str, new: bool = True) -> None:
    """Name and password, "This is my first time here" ticked when ``new`` (a known name
    logs in either way), and submit."""
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    new_account = page.locator("#new_account_input")
    if new and new_account.count():
        new_account.check()
    page.click("#login_submit")


def start_from_spawn_form(page: Page, starter: str) -> None:
    """On the spawn page's form, pick a starter ("" for none) and press Start."""
    page.wait_for_url(re.compile(r"/hub/spawn(/|$)"), timeout=UI_TIMEOUT_MS)
    page.select_option("#codepilot-starter", starter)
    page.locator("#spawn_form").get_by_role("button", name="Start").click()
    # The spawn page shows its progress, or the hub shows the form again with an error,
    # or the server was ready before the hub's slow_spawn_timeout and JupyterLab opens.
    error = page.locator(".spawn-error-msg")
    progress, lab = page.locator("#progress-bar"), page.locator("#jp-main-dock-panel")
    error.or_(progress).or_(lab).first.wait_for(timeout=SPAWN_TIMEOUT_MS)
    if error.count():
        raise AssertionError(f"the spawn form was refused: {error.inner_text()}")


# Reports every event the spawn page appends to its event log: the bar's value and the
# message under it, as the person watching the page sees them.
PROGRESS_OBSERVER = """
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("progress-log");
  if (!log) return;
  new MutationObserver(() => {
    const bar = document.getElementById("progress-bar");
    const message = document.getElementById("progress-message");
    window.codepilotSpawnProgress({
      percent: Number(bar.getAttribute("aria-valuenow")),
      message: message.textContent.trim(),
      failed: bar.classList.contains("bg-danger"),
    });
  }).observe(log, {childList: true});
});
"""


@dataclass
class SpawnProgress:
    """The progress events shown on the spawn-pending page, in order."""

    events: list[dict] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.expose_function("codepilotSpawnProgress", self.record)
        context.add_init_script(PROGRESS_OBSERVER)

    def record(self, event: dict) -> None:
        self.events.append(event)

    @property
    def messages(self) -> list[str]:
        return [event["message"] for event in self.events]

    @property
    def percents(self) -> list[int]:
        return [event["percent"] for event in self.events]


def lab_page_config(page: Page) -> dict:
    """JupyterLab's page config (server root, base URL, ...), embedded in the lab page."""
    return json.loads(page.locator("#jupyter-config-data").text_content())


def wait_for_lab(page: Page, timeout: float = SPAWN_TIMEOUT_MS) -> None:
    """Wait until JupyterLab has drawn its shell and file browser."""
    page.wait_for_url(re.compile(r"/lab(/|\?|$)"), timeout=timeout)
    page.locator("#jp-main-dock-panel").wait_for(timeout=timeout)
    # The file browser's listing (the collaborators panel is a listing too).
    page.locator("#filebrowser .jp-DirListing-content").wait_for(timeout=timeout)


def dismiss_news_prompt(page: Page) -> None:
    """Answer "No" to JupyterLab's "get notified about Jupyter news?" toast, if shown."""
    toast = page.locator(".Toastify__toast", has_text="Jupyter news")
    if toast.count():
        toast.get_by_role("button", name="No", exact=True).click()
        expect(toast).to_have_count(0)


def launcher_card(page: Page, title: str) -> Locator:
    label = page.locator(".jp-LauncherCard-label", has_text=title)
    return page.locator(".jp-Launcher:visible .jp-LauncherCard", has=label)


def show_launcher(page: Page) -> None:
    """Bring up a launcher: the one on screen, or a new one from the tab bar's "+"."""
    if page.locator(".jp-Launcher:visible").count():
        return
    page.locator("#jp-main-dock-panel .lm-TabBar-addButton").first.click()
    page.locator(".jp-Launcher:visible").wait_for(timeout=UI_TIMEOUT_MS)


def open_preview_tile(page: Page) -> Page:
    """Click the launcher's Preview tile; the preview's tab, loaded."""
    show_launcher(page)
    with page.context.expect_page() as opened:
        launcher_card(page, "Preview").click()
    preview = opened.value
    preview.wait_for_load_state()
    return preview


# As JupyterLab sends its requests: with the XSRF token of the page's cookie, which the
# server wants of every cookie-authenticated API request.
FETCH = """async ([method, url, headers, body]) => {
  const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1];
  if (xsrf) headers = {"X-XSRFToken": decodeURIComponent(xsrf), ...headers};
  const reply = await fetch(url, {method, headers, body: body ?? undefined});
  return {status: reply.status, text: await reply.text()};
}"""


def fetch_in_page(page: Page, method: str, url: str, headers=None, body=None) -> dict:
    """A request the page itself makes (its cookies, its origin): ``{status, text}``.
    Playwright's own ``page.request`` resolves names outside the browser, where
    ``<user>.localhost`` is unknown."""
    return page.evaluate(FETCH, [method, url, headers or {}, body])


def change_lab_setting(page: Page, server_url: str, plugin: str, values: dict) -> None:
    """Change the student's JupyterLab settings as Settings -> Settings Editor would
    (from a page of the server: JupyterLab)."""
    path = f"{server_url.rstrip('/')}/lab/api/settings/{plugin}"
    body = json.dumps({"raw": json.dumps(values)})
    reply = fetch_in_page(page, "PUT", path, {"Content-Type": "application/json"}, body)
    assert reply["status"] < 300, f"PUT {path}: {reply['status']} {reply['text']}"


def make_terminal_readable(page: Page, server_url: str) -> None:
    """Screen-reader mode: xterm.js mirrors the screen into DOM rows a test can read.

    The terminal otherwise paints on a canvas only.
    """
    change_lab_setting(
        page, server_url, "@jupyterlab/terminal-extension:plugin", {"screenReaderMode": True}
    )


class Terminal:
    """A JupyterLab terminal tab, driven with the keyboard."""

    def __init__(self, page: Page, panel: Locator):
        self.page = page
        self.panel = panel

    @classmethod
    def open_from_launcher(cls, page: Page) -> "Terminal":
        show_launcher(page)
        before = page.locator(".jp-Terminal").count()
        launcher_card(page, "Terminal").click()
        panel = page.locator(".jp-Terminal").nth(before)
        panel.wait_for(timeout=UI_TIMEOUT_MS)
        terminal = cls(page, panel)
        # The shell is ready when its prompt is on screen.
        terminal.wait_for_text(re.compile(r"\$\s*$", re.M))
        return terminal

    def lines(self) -> list[str]:
        rows = self.panel.locator(".xterm-accessibility-tree > div")
        return [line.replace("\xa0", " ").rstrip() for line in rows.all_text_contents()]

    def text(self) -> str:
        return "\n".join(line for line in self.lines() if line)

    def run(self, command: str) -> None:
        self.panel.locator(".xterm-helper-textarea").focus()
        self.page.keyboard.type(command)
        self.page.keyboard.press("Enter")

    def wait_for_text(self, pattern: str | re.Pattern, timeout: float = UI_TIMEOUT_MS) -> str:
        """Wait until the screen matches ``pattern`` (a regex or a plain substring)."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout / 1000
        while True:
            text = self.text()
            if regex.search(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"terminal never showed {regex.pattern!r}; it shows:\n{text}")
            self.page.wait_for_timeout(200)

    def run_and_wait(self, command: str, marker: str, timeout: float = UI_TIMEOUT_MS) -> str:
        """Run ``command`` and return the output between it and ``marker``.

        ``marker`` must be printed by the command (``...; echo DONE``) and not appear in
        the command line itself, so that only real output matches.
        """
        self.run(command)
        text = self.wait_for_text(re.compile(rf"^{re.escape(marker)}$", re.M), timeout)
        before_marker = text[: text.rindex(marker)]
        return before_marker.rsplit(command, 1)[-1].strip("\n")


def file_browser_item(page: Page, name: str) -> Locator:
    return page.locator(
        ".jp-DirListing-content .jp-DirListing-item",
        has=page.locator(".jp-DirListing-itemText", has_text=re.compile(rf"^{re.escape(name)}$")),
    )


def new_text_file(page: Page, name: str, text: str) -> None:
    """Launcher -> Text File, type ``text``, save with Ctrl+S and name it ``name``."""
    show_launcher(page)
    before = page.locator(".jp-FileEditor").count()
    launcher_card(page, "Text File").click()
    editor = page.locator(".jp-FileEditor").nth(before)
    content = editor.locator(".cm-content")
    content.wait_for(timeout=UI_TIMEOUT_MS)
    content.click()
    # insert_text puts the text in as one input, so the editor adds no closing brackets.
    page.keyboard.insert_text(text)
    page.keyboard.press("Control+s")
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=UI_TIMEOUT_MS)  # "Rename file" on first save
    dialog.locator("input[type=text]").fill(name)
    dialog.get_by_role("button", name="Rename").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")).to_contain_text(
        name, timeout=UI_TIMEOUT_MS
    )
    expect(dialog).to_have_count(0)


def add_named_server(page: Page, hub_url: str, server_name: str, starter: str) -> None:
    """Hub home: "Add New Server", then its "start"; spawn form with ``starter``; Start."""
    page.goto(f"{hub_url}/hub/home")
    page.wait_for_function("window._jupyterhub_page_loaded === true")  # handlers attached
    page.fill(".new-server-name", server_name)
    page.locator(".new-server-btn").click()
    # The hub adds the server without starting it and reloads; its row has "start".
    page.locator(f"#start-{server_name}").click()
    start_from_spawn_form(page, starter)


# The text of the file editor on screen (CodeMirror 6).
FILE_EDITOR = ".jp-FileEditor:visible .cm-content"


def open_file_in_editor(page: Page, server_url: str, path: str) -> None:
    """Open ``path`` in the editor through JupyterLab's file URL (``lab/tree/<path>``)."""
    page.goto(f"{server_url}lab/tree/{path}")
    wait_for_lab(page)
    name = path.rsplit("/", 1)[-1]
    expect(dock_tab(page, name).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.locator(FILE_EDITOR).wait_for(timeout=UI_TIMEOUT_MS)


def replace_in_editor(page: Page, text: str) -> None:
    """Replace the whole text of the editor on screen, then save with Ctrl+S."""
    content = page.locator(FILE_EDITOR)
    content.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    page.keyboard.press("Control+s")
    # The tab loses its "unsaved" dot once the server holds the file.
    expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).not_to_have_class(
        re.compile(r"jp-mod-dirty"), timeout=UI_TIMEOUT_MS
    )


def type_at_end(page: Page, text: str, editor: str = FILE_EDITOR) -> None:
    """Type ``text`` (a newline presses Enter) at the end of ``editor``'s text."""
    page.locator(editor).click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)


def dock_tab(page: Page, label: str) -> Locator:
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=label)


def drag_tab_to_bottom(page: Page, label: str) -> None:
    """Drag a main-area tab to the lower edge of the dock: JupyterLab splits the area."""
    tab = dock_tab(page, label).first.bounding_box()
    dock = page.locator("#jp-main-dock-panel").bounding_box()
    assert tab and dock, "tab or dock panel not on screen"
    page.mouse.move(tab["x"] + tab["width"] / 2, tab["y"] + tab["height"] / 2)
    page.mouse.down()
    target_x = dock["x"] + dock["width"] / 2
    target_y = dock["y"] + dock["height"] * 0.92
    page.mouse.move(target_x, target_y, steps=20)
    page.mouse.up()
