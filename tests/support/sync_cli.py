"""``python -m server_extension.sync``, run as the init container and the spawners run it."""

import json
import os
import subprocess
import sys

from .paths import REPO_ROOT


def run_sync(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run the sync command with ``env`` over this process's environment; with ``check``,
    a non-zero exit fails the test with the command's output."""
    result = subprocess.run(
        [sys.executable, "-m", "server_extension.sync", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def json_lines(output: str) -> list[dict]:
    """The JSON records of a ``--progress json`` or ``--json`` run, one a line."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]
