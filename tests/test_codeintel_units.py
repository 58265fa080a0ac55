"""The editor's code intelligence settings, as pure functions."""

import json
import os

from jupyter_lsp.manager import LanguageServerManager

from server_extension.codeintel import (
    EXTRA_PATHS,
    LAB_DEFAULTS,
    NODE_ROOT,
    VENV_SITE_PACKAGES,
    config_path_with_lab_defaults,
    language_server_settings,
    python_server_spec,
    student_package_folders,
    typescript_server_specs,
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


def test_exactly_the_two_language_servers_are_named_and_detection_stays_off(tmp_path):
    settings = language_server_settings(True, str(tmp_path))
    assert settings["autodetect"] is False
    servers = settings["language_servers"]
    assert list(servers) == ["typescript-language-server", "pylsp"]
    # jupyter-lsp's own spec finder, given the one node root `make install` fills.
    typescript = servers["typescript-language-server"]
    assert typescript["argv"][1].startswith(str(NODE_ROOT / "node_modules"))
    assert typescript["argv"][-1] == "--stdio"
    assert "javascript" in typescript["languages"]
    assert servers["pylsp"]["argv"][1:] == ["-P", "-m", "pylsp"]
    assert language_server_settings(False, str(tmp_path)) == {
        "autodetect": False,
        "language_servers": {},
    }


def test_no_typescript_server_where_the_node_root_has_none(tmp_path):
    assert typescript_server_specs(str(tmp_path)) == {}


def test_the_settings_are_what_jupyter_lsps_detection_finds(tmp_path):
    """The specs jupyter-lsp's detection finds in `NODE_ROOT` at every start (validating
    each as it loads them), named once instead."""
    settings = language_server_settings(True, str(tmp_path))
    named = LanguageServerManager(**settings)
    named.init_language_servers()
    detecting = LanguageServerManager(
        extra_node_roots=[str(NODE_ROOT)],
        node_roots=[],
        language_servers={"pylsp": settings["language_servers"]["pylsp"]},
    )
    detecting.init_language_servers()
    assert named.language_servers == {
        key: spec
        for key, spec in detecting.language_servers.items()
        if key in ("pylsp", "typescript-language-server")
    }
