"""The editor's code intelligence settings, as pure functions."""

import json
import os

from server_extension.codeintel import (
    EXTRA_PATHS,
    LAB_DEFAULTS,
    VENV_SITE_PACKAGES,
    config_path_with_lab_defaults,
    python_server_spec,
    student_package_folders,
)


def test_lab_defaults_come_last_on_the_config_path_and_once():
    assert config_path_with_lab_defaults(None) == str(LAB_DEFAULTS)
    admin = os.pathsep.join(["/srv/a", "/srv/b"])
    extended = config_path_with_lab_defaults(admin)
    assert extended.split(os.pathsep) == ["/srv/a", "/srv/b", str(LAB_DEFAULTS)]
    assert config_path_with_lab_defaults(extended) == extended


def test_lab_defaults_turn_on_completion_as_you_type():
    overrides = json.loads(
        (LAB_DEFAULTS / "labconfig" / "default_setting_overrides.json").read_text()
    )
    assert overrides["@jupyterlab/completer-extension:manager"]["autoCompletion"] is True
    assert overrides["@jupyter-lsp/jupyterlab-lsp:completion"]["continuousHinting"] is True


def test_pylsp_reads_the_workspace_venv_and_the_user_site_with_only_that_setting_sent():
    folders = student_package_folders("/work/ws", user_site="/home/s/.local/lib/site-packages")
    assert folders == [f"/work/ws/.venv/{VENV_SITE_PACKAGES}", "/home/s/.local/lib/site-packages"]
    assert student_package_folders("/work/ws", user_site=None) == folders[:1]
    spec = python_server_spec("/usr/bin/python3", folders)
    assert spec["argv"] == ["/usr/bin/python3", "-P", "-m", "pylsp"]
    # jupyterlab-lsp sends a default only for a setting in the schema, and sends every one.
    assert spec["workspace_configuration"] == {EXTRA_PATHS: folders}
    assert list(spec["config_schema"]["properties"]) == [EXTRA_PATHS]
    assert spec["config_schema"]["properties"][EXTRA_PATHS]["default"] == folders
