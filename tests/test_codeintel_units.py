"""The editor's code intelligence settings, as pure functions."""

import json
import os

from server_extension.codeintel import LAB_DEFAULTS, config_path_with_lab_defaults


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
