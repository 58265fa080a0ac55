"""Launching Debian's Chromium for the browser tests, and what it leaves behind.

Playwright drives the system browser (``apt-get install chromium``): its own browser
download needs hosts this machine cannot reach.
"""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright

CHROMIUM = os.environ.get("CODEPILOT_CHROMIUM", "/usr/bin/chromium")

# Headless, and quiet on the network: without these Chromium keeps calling home (updates,
# sync, safe browsing, QUIC probes) to hosts that are unreachable from here.
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

VIEWPORT = {"width": 1400, "height": 900}


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)"
    return None


def launch_chromium(playwright: Playwright) -> Browser:
    # A non-persistent launch gets a fresh temporary user-data-dir from Playwright, deleted
    # when the browser closes: no profile, cache or cookies leak from one run to the next.
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@dataclass
class BrowserEvidence:
    """What the tests saw: console lines of every page and the screenshots taken."""

    artifacts_dir: Path
    console: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    def watch(self, context: BrowserContext, who: str) -> BrowserContext:
        """Record console messages, page errors and failed requests of every page."""

        def on_page(page: Page):
            page.on("console", lambda m: self.console.append(f"[{who}] {m.type}: {m.text}"))
            page.on("pageerror", lambda e: self.console.append(f"[{who}] pageerror: {e}"))
            page.on(
                "requestfailed",
                lambda r: self.console.append(f"[{who}] request failed: {r.url} {r.failure}"),
            )

        context.on("page", on_page)
        for page in context.pages:
            on_page(page)
        return context

    def screenshot(self, page: Page, name: str, full_page: bool = False) -> Path:
        path = self.artifacts_dir / f"{name}.png"
        page.screenshot(path=path, full_page=full_page)
        self.screenshots.append(path)
        return path
