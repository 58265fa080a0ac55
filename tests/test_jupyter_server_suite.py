"""jupyter-server's own contents REST API tests, run against Code Pilot's managers.

``tests/services/contents/test_api.py`` of the installed jupyter-server's source
distribution (fetched by ``upstream/sources.py``, never copied here) runs as published
in a pytest of its own, with its own settings (warnings are errors), and
``upstream/codepilot_contents_plugin.py`` runs each of its tests with the stock manager,
``local`` and ``sync`` (on a moto S3 server). Everything that passes on stock must pass
on ours, bar the differences that plugin lists with their reasons.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .jupyter_server_suite.sources import CONTENTS_API_TESTS, unpack_tests, upstream_source
from .support.hubtools import REPO_ROOT
from .support.s3server import s3_server_fixture

PLUGIN_DIR = Path(__file__).parent / "jupyter_server_suite"
BUCKET = "upstream-contents"
MODES = ("stock", "local", "sync")

s3 = s3_server_fixture(relay=False, buckets=(BUCKET,))


def parity_problems(report: dict) -> list[str]:
    """What the run shows of ours falling short of stock, one line per case and mode."""
    differences = {(item["mode"], item["test"]) for item in report["differences"]}
    problems = []
    for case, outcomes in sorted(report["cases"].items()):
        if outcomes.get("stock") != "passed":
            continue
        test = case.split("{", 1)[0]
        for mode in MODES[1:]:
            expected = "xfailed" if (mode, test) in differences else "passed"
            if outcomes.get(mode) != expected:
                problems.append(f"{case} [{mode}]: {outcomes.get(mode)}, expected {expected}")
    return problems


def test_parity_problems_finds_what_ours_lose():
    report = {
        "differences": [{"mode": "sync", "test": "test_b", "reason": "why"}],
        "cases": {
            "test_a": {"stock": "passed", "local": "passed", "sync": "failed"},
            'test_b{"path": ""}': {"stock": "passed", "local": "passed", "sync": "xfailed"},
            "test_c": {"stock": "failed", "local": "failed", "sync": "failed"},
            "test_d": {"stock": "passed", "local": "error"},
        },
    }
    assert parity_problems(report) == [
        "test_a [sync]: failed, expected passed",
        "test_d [local]: error, expected passed",
        "test_d [sync]: None, expected passed",
    ]


def test_only_tests_and_settings_are_unpacked_and_nothing_climbs_out(tmp_path):
    sdist = tmp_path / "jupyter_server-9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name in (
            "jupyter_server-9.9/tests/test_x.py",
            "jupyter_server-9.9/pyproject.toml",
            "jupyter_server-9.9/jupyter_server/__init__.py",
            "jupyter_server-9.9/tests/../../escaped.py",
            "/absolute.py",
            "other-1.0/tests/test_y.py",
        ):
            member = tarfile.TarInfo(name)
            member.size = 2
            archive.addfile(member, io.BytesIO(b"x\n"))
        link = tarfile.TarInfo("jupyter_server-9.9/tests/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    destination = tmp_path / "unpacked"
    unpack_tests(sdist, destination)
    unpacked = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert unpacked == [
        "jupyter_server-9.9.tar.gz",
        "unpacked",
        "unpacked/pyproject.toml",
        "unpacked/tests",
        "unpacked/tests/test_x.py",
    ]


@pytest.fixture(scope="module")
def upstream():
    return upstream_source()


@pytest.mark.integration
def test_upstream_contents_api_tests_pass_on_our_managers(upstream, s3, tmp_path):
    report_path = tmp_path / "report.json"
    command = [
        *(sys.executable, "-m", "pytest", CONTENTS_API_TESTS),
        # The suite's own settings from its pyproject.toml, minus the addopts that only
        # make output (doctests, locals, colour, durations); pytest-asyncio would compete
        # with pytest-jupyter for the suite's coroutines.
        *("-o", "addopts=", "-q", "-rfEX", "-p", "no:asyncio", "-p", "no:cacheprovider"),
        *("-p", "codepilot_contents_plugin", f"--codepilot-managers={','.join(MODES)}"),
        f"--codepilot-s3-endpoint={s3.endpoint_url}",
        f"--codepilot-s3-bucket={BUCKET}",
        f"--codepilot-report={report_path}",
    ]
    env = {
        **os.environ,
        **s3.env,
        "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(REPO_ROOT)]),
    }
    run = subprocess.run(
        command, cwd=upstream, env=env, capture_output=True, text=True, timeout=270
    )
    summary = run.stdout[run.stdout.rfind("=== jupyter-server contents API") :]
    print(summary)  # pytest -ra / -s shows the figures per manager
    assert report_path.exists(), run.stdout[-5000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    problems = parity_problems(report)
    assert not problems, "\n".join(problems) + "\n" + run.stdout[-8000:]
    counts = report["counts"]
    assert counts["stock"].get("passed", 0) >= 100, counts  # the file really ran
    assert {mode: sum(counts[mode].values()) for mode in MODES} == dict.fromkeys(
        MODES, len(report["cases"])
    )
    assert run.returncode == 0, run.stdout[-8000:]
