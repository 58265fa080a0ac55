"""The real helm over the chart in helm/codepilot: fetch it, run it, render value sets."""

import importlib.util
import json
import subprocess
from pathlib import Path

import yaml

from .paths import REPO_ROOT

CHART = REPO_ROOT / "helm" / "codepilot"
RELEASE = "cp"
NAMESPACE = "codepilot-test"


def load_fetch_helm():
    """helm/fetch_helm.py, the script `make install-test` runs (not a package)."""
    spec = importlib.util.spec_from_file_location("fetch_helm", CHART.parent / "fetch_helm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def helm_binary() -> Path:
    """The helm that `make install-test` puts in the venv (fetched now if missing)."""
    fetch_helm = load_fetch_helm()
    fetch_helm.install(fetch_helm.default_destination())
    return fetch_helm.default_destination()


def run_helm(helm: Path, *args: str, values: dict | None = None, tmp: Path | None = None):
    """``helm *args``, with ``values`` written to a file under ``tmp`` and passed as --values."""
    command = [str(helm), *args]
    if values is not None:
        values_file = tmp / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        command += ["--values", str(values_file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def render(helm: Path, values: dict, tmp: Path) -> list[dict]:
    """The objects ``helm template`` makes of the chart with ``values``."""
    result = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values, tmp=tmp
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def install_dry_run(helm: Path, values: dict, tmp: Path) -> tuple[list[dict], str]:
    """The objects and the NOTES.txt text ``helm install --dry-run`` makes of ``values``."""
    result = run_helm(
        helm,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "--output",
        "json",
        values=values,
        tmp=tmp,
    )
    assert result.returncode == 0, result.stderr
    release = json.loads(result.stdout)
    objects = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
    return objects, release["info"]["notes"]
