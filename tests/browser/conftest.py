"""Fixtures of the browser tests: one hub and one Chromium per module, a context per person.

When a test fails, its report gets the browser console (every page of every person) and
the end of the hub's log, which on one machine also holds every user server's log.
"""

import secrets
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from ..support.hubtools import REPO_ROOT, RunningHub, start_hub
from .chromium import (
    VIEWPORT,
    BrowserEvidence,
    chromium_missing_reason,
    launch_chromium,
)
from .network import launch_network_chromium, start_network_hub

ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "browser"
SPAWN_PAGE_CONFIG = Path(__file__).parent / "show_spawn_page.py"
HUB_LOG_LINES = 300

TEACHER, TEACHER_PASSWORD = "tess", "teacher-password"

EVIDENCE = pytest.StashKey[BrowserEvidence]()
HUB = pytest.StashKey[RunningHub]()


def pytest_collection_modifyitems(config, items):
    reason = chromium_missing_reason()
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when in ("setup", "call") and report.failed:
        evidence = item.config.stash.get(EVIDENCE, None)
        hub = item.config.stash.get(HUB, None)
        if evidence is not None:
            report.sections.append(("browser console", "\n".join(evidence.console) or "(empty)"))
            shots = "\n".join(str(path) for path in evidence.screenshots[-5:])
            report.sections.append(("latest screenshots", shots or "(none)"))
        if hub is not None:
            tail = hub.log().splitlines()[-HUB_LOG_LINES:]
            report.sections.append(
                (f"hub and user-server log ({hub.log_path}, last lines)", "\n".join(tail))
            )
    return report


@pytest.fixture(scope="module")
def admin_password() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def browser_hub(request, admin_password):
    """The one-machine hub as `make up` runs it, with a known admin password."""
    hub = start_hub(
        env={
            "CODEPILOT_ADMIN_PASSWORD": admin_password,
            # Plain starts, and the spawn page always, so its progress can be tested.
            "CODEPILOT_HUB_EXTRA_CONFIG": str(SPAWN_PAGE_CONFIG),
        }
    )
    request.config.stash[HUB] = hub
    yield hub
    hub.stop()
    del request.config.stash[HUB]


@pytest.fixture(scope="module")
def plain_hub(request):
    """The one-machine hub as `make up` runs it, nothing added."""
    hub = start_hub()
    request.config.stash[HUB] = hub
    yield hub
    hub.stop()
    del request.config.stash[HUB]


@pytest.fixture(scope="package")
def network_hub(network_admin_password):
    """A class over plain HTTP on a network name (``CODEPILOT_PUBLIC_URL``), with a
    teacher: one for the modules that use it."""
    hub = start_network_hub(
        env={
            "CODEPILOT_TEACHERS": TEACHER,
            "CODEPILOT_TEACHER_PASSWORD": TEACHER_PASSWORD,
            "CODEPILOT_ADMIN_PASSWORD": network_admin_password,
        }
    )
    yield hub
    hub.stop()


@pytest.fixture(scope="package")
def network_admin_password() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def network_chromium():
    """Chromium that finds hub.example.test, its users' hosts and the previews here.
    Over plain HTTP on such names it sends no ``Sec-Fetch-*``. One per module, as
    ``chromium``: Playwright's sync API runs one at a time."""
    with sync_playwright() as playwright:
        browser = launch_network_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def evidence(request) -> BrowserEvidence:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    found = BrowserEvidence(ARTIFACTS_DIR)
    request.config.stash[EVIDENCE] = found
    return found


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def new_context(chromium, evidence):
    """Opens a browser context (own cookies: one person) whose console is recorded."""
    contexts = []

    def open_context(who: str):
        context = chromium.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        evidence.watch(context, who)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
