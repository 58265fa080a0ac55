"""pytest plugin: jupyter-server's own contents API tests against Code Pilot's managers.

Loaded with ``-p codepilot_contents_plugin`` into a run of the upstream file
``tests/services/contents/test_api.py`` from jupyter-server's source distribution (see
``sources.py``; ``tests/test_jupyter_server_suite.py`` drives the run). The file is used
as published. Its own ``jp_argv`` fixture picks the manager class on the server's
command line; this plugin parametrizes ``jp_argv`` instead (a ``parametrize`` mark
takes precedence over a parametrized fixture), so every upstream test runs once per
manager:

- ``stock``: jupyter-server's default ``AsyncLargeFileManager``, which ours extend;
- ``local``: ``WorkspaceFileManager``;
- ``sync``: ``SyncContentsManager`` on the S3 API given by ``--codepilot-s3-endpoint``,
  each test in a key prefix of its own.

Upstream tests where Code Pilot differs from stock on purpose are listed in
``DELIBERATE_DIFFERENCES`` with the reason; they are marked ``xfail(strict=True)``, so
a listed test that starts to pass fails the run, and the summary prints every reason.
"""

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

MANAGERS = {
    "stock": "jupyter_server.services.contents.largefilemanager.AsyncLargeFileManager",
    "local": "server_extension.storage.contents.WorkspaceFileManager",
    "sync": "server_extension.storage.contents.SyncContentsManager",
}

# (mode, upstream test name) -> why Code Pilot answers differently from stock. Empty for
# jupyter-server 2.21's test_api.py: none of its tests reaches one of these refusals.
DELIBERATE_DIFFERENCES: dict[tuple[str, str], str] = {}
OUR_REFUSALS = (
    "paths through a symlink out of the workspace (404), renaming the root (400), "
    "copying a folder that holds a symlink out (400): server_extension/storage/contents.py"
)

MODE_KEY = pytest.StashKey[dict[str, str]]()
OUTCOMES_KEY = pytest.StashKey[dict[str, str]]()
ITEMS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("codepilot", "Code Pilot contents managers")
    group.addoption(
        "--codepilot-managers",
        default=",".join(MANAGERS),
        help=f"comma-separated managers to run every test with, of {', '.join(MANAGERS)}",
    )
    group.addoption("--codepilot-s3-endpoint", default="", help="S3 API URL for sync mode")
    group.addoption("--codepilot-s3-bucket", default="", help="S3 bucket for sync mode")
    group.addoption("--codepilot-report", default="", help="write outcomes as JSON here")


def pytest_configure(config):
    modes = config.getoption("codepilot_managers").split(",")
    unknown = set(modes) - set(MANAGERS)
    if unknown:
        raise pytest.UsageError(f"unknown managers {sorted(unknown)}; known: {list(MANAGERS)}")
    s3 = config.getoption("codepilot_s3_endpoint"), config.getoption("codepilot_s3_bucket")
    if "sync" in modes and not all(s3):
        raise pytest.UsageError("sync needs --codepilot-s3-endpoint and --codepilot-s3-bucket")
    config.stash[MODE_KEY] = {}
    config.stash[OUTCOMES_KEY] = {}
    config.stash[ITEMS_KEY] = {}


def argv_for(mode: str) -> list[str]:
    return [f"--ServerApp.contents_manager_class={MANAGERS[mode]}"]


def mode_of(item) -> str | None:
    argv = getattr(item, "callspec", None) and item.callspec.params.get("jp_argv")
    return next((mode for mode in MANAGERS if argv == argv_for(mode)), None)


def case_of(item) -> str:
    """The test and its upstream parameters, without the manager: the same for all modes."""
    params = {key: value for key, value in item.callspec.params.items() if key != "jp_argv"}
    return item.originalname + (json.dumps(params, default=str, sort_keys=True) if params else "")


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    if "jp_argv" not in metafunc.fixturenames:
        return
    modes = metafunc.config.getoption("codepilot_managers").split(",")
    metafunc.definition.add_marker(
        pytest.mark.parametrize("jp_argv", [argv_for(mode) for mode in modes], ids=modes)
    )


def pytest_collection_modifyitems(config, items):
    modes = config.stash[MODE_KEY]
    for item in items:
        mode = mode_of(item)
        if mode is None:
            raise pytest.UsageError(f"{item.nodeid} runs no contents manager of ours")
        modes[item.nodeid] = mode
        reason = DELIBERATE_DIFFERENCES.get((mode, item.originalname))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(autouse=True)
def codepilot_workspace_in_s3(request, jp_server_config, jp_asyncio_loop):
    """sync mode: the workspace's bucket and a key prefix of this test's own; after the
    test, the manager's S3 client is closed, as Code Pilot's extension does at a stop."""
    if mode_of(request.node) != "sync":
        yield
        return
    config = request.config
    section = jp_server_config.SyncContentsManager
    section.s3_bucket = config.getoption("codepilot_s3_bucket")
    section.s3_endpoint_url = config.getoption("codepilot_s3_endpoint")
    section.s3_key_prefix = f"upstream/{uuid.uuid4().hex}/"
    yield
    app = request.node.funcargs.get("jp_serverapp")
    if app is not None:
        jp_asyncio_loop.run_until_complete(app.contents_manager.close())


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    """Fail a test whose server runs any other manager than its mode says."""
    app = item.funcargs.get("jp_serverapp")
    if app is not None:
        manager = type(app.contents_manager)
        running = f"{manager.__module__}.{manager.__qualname__}"
        if running != MANAGERS[item.config.stash[MODE_KEY][item.nodeid]]:
            raise AssertionError(f"the server runs {running}, not the manager under test")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    session.config.stash[ITEMS_KEY] = {item.nodeid: item for item in session.items}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Record each test's outcome; a failing setup or teardown spoils a passed call."""
    report = yield
    outcomes = item.config.stash[OUTCOMES_KEY]
    if outcomes.get(item.nodeid) in ("failed", "error"):
        return report
    if hasattr(report, "wasxfail"):
        outcome = "xpassed" if report.passed else "xfailed"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    else:
        outcome = report.outcome
    if report.when == "call" or outcome != "passed":
        outcomes[item.nodeid] = outcome
    return report


def results(config) -> dict[str, dict[str, str]]:
    """{case: {mode: outcome}} for every test that ran."""
    items, modes = config.stash[ITEMS_KEY], config.stash[MODE_KEY]
    by_case: dict[str, dict[str, str]] = {}
    for nodeid, outcome in config.stash[OUTCOMES_KEY].items():
        by_case.setdefault(case_of(items[nodeid]), {})[modes[nodeid]] = outcome
    return by_case


def pytest_terminal_summary(terminalreporter, config):
    by_case = results(config)
    counts = {mode: Counter() for mode in config.getoption("codepilot_managers").split(",")}
    for outcomes in by_case.values():
        for mode, outcome in outcomes.items():
            counts[mode][outcome] += 1
    writer = terminalreporter
    writer.section("jupyter-server contents API tests, per contents manager")
    for mode, counter in counts.items():
        figures = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counter.items()))
        writer.write_line(f"{mode:>5} ({MANAGERS[mode]}): {figures or 'nothing ran'}")
    for (mode, test), reason in sorted(DELIBERATE_DIFFERENCES.items()):
        writer.write_line(f"deliberate difference, {mode}: {test}: {reason}")
    if not DELIBERATE_DIFFERENCES:
        writer.write_line(f"deliberate differences: none exercised here (ours: {OUR_REFUSALS})")
    report_path = config.getoption("codepilot_report")
    if report_path:
        report = {
            "managers": {mode: MANAGERS[mode] for mode in counts},
            "counts": {mode: dict(counter) for mode, counter in counts.items()},
            "differences": [
                {"mode": mode, "test": test, "reason": reason}
                for (mode, test), reason in sorted(DELIBERATE_DIFFERENCES.items())
            ],
            "cases": by_case,
        }
        Path(report_path).write_text(json.dumps(report, indent=1, sort_keys=True))
