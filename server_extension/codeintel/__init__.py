"""Code intelligence in the editor: which language servers jupyter-lsp may start, and the
switch that turns them all off.

jupyter-lsp (a server extension that ships with JupyterLab) starts a language server when
jupyterlab-lsp in the browser first opens a document of its language, as a child process
of this server: the same Unix user, network namespace and cgroup. It stops it when the
last such document closes, and with the server. This package only configures it: pylsp
(python-lsp-server with python-lsp-ruff) from this server's Python, and
typescript-language-server with its TypeScript 5 from ``node_modules/`` beside this file
(``make install`` and the runner image run ``npm ci`` here). pylsp's jedi also reads
the packages a student installs: in the workspace's ``.venv/`` (the one-machine server's
own venv is not theirs to write) or, where this Python has one, the user site
(``pip install`` in the runner image). It also makes completion show as you type
(JupyterLab's completer opens on Tab only, by default), and waits for pylsp, which
answers in seconds, not the 1 s JupyterLab waits for a provider.
"""

import functools
import os
import site
import sys
from importlib.metadata import entry_points
from pathlib import Path

from jupyter_lsp.manager import LanguageServerManager
from jupyter_lsp.specs.config import load_config_schema

# package.json and its lock live here; ``npm ci`` puts the language servers beside them.
NODE_ROOT = Path(__file__).resolve().parent
# jupyterlab-lsp, the browser half: hidden when code intelligence is off.
FRONTEND_EXTENSION = "@jupyter-lsp/jupyterlab-lsp"
# A Jupyter config folder whose labconfig/default_setting_overrides.json turns on completion
# as you type: JupyterLab's ``autoCompletion`` and jupyterlab-lsp's ``continuousHinting``.
LAB_DEFAULTS = NODE_ROOT / "jupyter-config"


# pylsp's setting of the folders jedi reads beside its own Python's.
EXTRA_PATHS = "pylsp.plugins.jedi.extra_paths"
# Where a venv made with this server's Python keeps its packages, under the venv's root.
VENV_SITE_PACKAGES = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def student_package_folders(
    workspace: str, user_site: str | None = site.USER_SITE if site.ENABLE_USER_SITE else None
) -> list[str]:
    """Where the packages a student installs land: the workspace's ``.venv/`` and the
    user site of this server's Python, if it reads one (a venv's does not). They need not
    exist yet: jedi looks at them at each request, so an install shows without restart."""
    folders = [str(Path(workspace) / ".venv" / VENV_SITE_PACKAGES)]
    return folders + ([user_site] if user_site else [])


def python_server_spec(python: str = sys.executable, package_folders: list[str] = ()) -> dict:
    """jupyter-lsp's spec of pylsp, run with ``-P``: the workspace, its working directory,
    stays off ``sys.path``, so a student's ``json.py`` cannot replace a module pylsp uses.

    jedi completes from ``package_folders`` too, after this Python's own packages: through
    pylsp's ``jedi.extra_paths`` setting, whose default jupyterlab-lsp sends from the
    spec's ``workspace_configuration``. The spec's schema holds that one setting of pylsp's
    own: jupyterlab-lsp sends every default of the schema, and pylsp's full schema would
    turn its pyflakes and pycodestyle back on beside ruff. The folders only reach jedi's
    analysis, never pylsp's own imports.
    """
    schema = load_config_schema("pylsp")
    sent = {EXTRA_PATHS: {**schema["properties"][EXTRA_PATHS], "default": list(package_folders)}}
    return {
        "argv": [python, "-P", "-m", "pylsp"],
        "languages": ["python"],
        "version": 2,
        "display_name": "python-lsp-server (pylsp)",
        "mime_types": ["text/python", "text/x-ipython"],
        "config_schema": {**schema, "properties": sent},
        "workspace_configuration": {EXTRA_PATHS: list(package_folders)},
    }


# jupyter-lsp's spec finder of typescript-language-server (its ``jupyter_lsp_spec_v1``
# entry point), which finds the server in the node roots it is given.
TYPESCRIPT_SPEC_FINDER = "typescript-language-server"


@functools.cache
def typescript_server_specs(node_root: str = str(NODE_ROOT)) -> dict:
    """jupyter-lsp's own spec of typescript-language-server installed under ``node_root``,
    by its key; empty when it is not there. What is installed does not change under a
    running fork server, which reads this ahead for its children."""
    manager = LanguageServerManager(extra_node_roots=[node_root], node_roots=[])
    specs = {}
    for finder in entry_points(group="jupyter_lsp_spec_v1", name=TYPESCRIPT_SPEC_FINDER):
        specs.update(finder.load()(manager))
    return {key: spec for key, spec in specs.items() if spec.get("argv")}


def language_server_settings(enabled: bool, workspace: str, python: str = sys.executable) -> dict:
    """``c.LanguageServerManager`` settings, by trait name.

    On: exactly typescript-language-server from ``NODE_ROOT`` and pylsp as
    ``python_server_spec`` says, with ``workspace``'s package folders. jupyter-lsp's own
    detection stays off: at every start it runs twenty spec finders twice, each looking
    for its server on the disk, and validates what they find, to find the same two: a
    sixth of a forked server's start CPU (``bench_class_start.py``). Off: no language
    server at all.
    """
    if not enabled:
        return {"autodetect": False, "language_servers": {}}
    spec = python_server_spec(python, student_package_folders(workspace))
    return {
        "autodetect": False,
        "language_servers": {**typescript_server_specs(), "pylsp": spec},
    }


def configure_language_servers(
    config, enabled: bool, workspace: str, python: str = sys.executable
) -> None:
    """Put ``language_server_settings`` into a server's ``Config`` before jupyter-lsp
    loads; a ``c.LanguageServerManager`` setting made in a config file wins."""
    section = config.LanguageServerManager
    for name, value in language_server_settings(enabled, workspace, python).items():
        if name not in section:
            section[name] = value


def config_path_with_lab_defaults(config_path: str | None) -> str:
    """``JUPYTER_CONFIG_PATH`` with ``LAB_DEFAULTS`` last: jupyterlab_server reads the
    defaults of JupyterLab's settings from every ``labconfig/`` on Jupyter's config path
    when it loads; a folder already named keeps its precedence, a user's settings win."""
    folders = [folder for folder in (config_path or "").split(os.pathsep) if folder]
    if str(LAB_DEFAULTS) not in folders:
        folders.append(str(LAB_DEFAULTS))
    return os.pathsep.join(folders)


def use_lab_defaults(environ=os.environ) -> None:
    """Completion as you type in this server's JupyterLab (before jupyterlab loads)."""
    environ["JUPYTER_CONFIG_PATH"] = config_path_with_lab_defaults(
        environ.get("JUPYTER_CONFIG_PATH")
    )


def without_frontend(page_config: dict) -> dict:
    """JupyterLab's page config with jupyterlab-lsp disabled (``disabledExtensions``
    takes a list or, once read from files, a mapping of names to true)."""
    disabled = page_config.get("disabledExtensions") or {}
    if isinstance(disabled, list):
        disabled = dict.fromkeys(disabled, True)
    return {**page_config, "disabledExtensions": {**disabled, FRONTEND_EXTENSION: True}}


def hide_frontend(web_settings: dict) -> None:
    """Make every JupyterLab page load without jupyterlab-lsp, through jupyterlab_server's
    ``page_config_hook`` setting (after any hook already there)."""
    earlier = web_settings.get("page_config_hook")

    def hook(handler, page_config):
        if earlier is not None:
            page_config = earlier(handler, page_config)
        return without_frontend(page_config)

    web_settings["page_config_hook"] = hook
