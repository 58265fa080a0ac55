"""Real-time collaboration (jupyter-collaboration) fitted to a Code Pilot server.

jupyter-server-ydoc keeps its document store (``.jupyter_ystore.db``) and its session
file in the server's root, the workspace, which the sync would then push to S3 at each
keystroke; jupyter-server-fileid keeps its ids in the home folder, shared by a user's
projects. Both go into the workspace's state folder instead, which is never synced and
stays with the workspace across restarts. Off (``c.CodePilot.collaboration = False``),
neither server extension loads and JupyterLab never loads the collaboration plugins, so
the server is the one it was before collaboration existed.
"""

from dataclasses import dataclass
from pathlib import Path

from .storage.ignore import STATE_DIR
from .upstream import (
    extension_app_config,
    harden_collaboration_websocket,
    skip_extension,
)

SERVER_EXTENSIONS = ("jupyter_server_ydoc", "jupyter_server_fileid")
# JupyterLab packages of jupyter-collaboration (jupyter-docprovider, jupyter-collaboration-ui).
LAB_PACKAGES = ("@jupyter/docprovider-extension", "@jupyter/collaboration-extension")
# Core plugins @jupyter/docprovider-extension replaces (its package.json disables them):
# with collaboration off they are JupyterLab's again.
REPLACED_PLUGINS = (
    "@jupyterlab/filebrowser-extension:defaultFileBrowser",
    "@jupyterlab/notebook-extension:cell-executor",
)
# The largest update a peer may send over a document's websocket (the library allows
# 1 GB, which one peer could make the server buffer); a whole pasted file fits.
MAX_UPDATE_BYTES = 32 * 1024 * 1024
# Seconds between two looks at an open file's modification time (a terminal's edit
# reaches the editors within that); a stat of the local disk, never an S3 request.
FILE_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class CollaborationState:
    """Where the collaboration keeps its own files: in the workspace's state folder."""

    folder: Path

    @classmethod
    def of_workspace(cls, root: str) -> "CollaborationState":
        return cls(Path(root) / STATE_DIR / "collaboration")

    @property
    def ystore(self) -> Path:
        return self.folder / "ystore.db"

    @property
    def file_ids(self) -> Path:
        return self.folder / "file_ids.db"

    @property
    def sessions(self) -> Path:
        return self.folder / "sessions.json"


def configure_collaboration(serverapp, enabled: bool, log) -> None:
    """Set up (or switch off) the collaboration extensions, once they have read their
    config and before they load."""
    if not enabled:
        for name in SERVER_EXTENSIONS:
            skip_extension(serverapp, name)
        log.info("Code Pilot: real-time collaboration is off")
        return
    ydoc = extension_app_config(serverapp, "jupyter_server_ydoc")
    file_ids = extension_app_config(serverapp, "jupyter_server_fileid")
    if ydoc is None or file_ids is None:
        log.warning("Code Pilot: jupyter-collaboration is not installed: no live pairing")
        return
    state = CollaborationState.of_workspace(serverapp.root_dir)
    state.folder.mkdir(parents=True, exist_ok=True)
    ydoc.config.SQLiteYStore.db_path = str(state.ystore)
    ydoc.session_store_path = str(state.sessions)
    ydoc.file_poll_interval = FILE_POLL_SECONDS
    file_ids.config.BaseFileIdManager.db_path = str(state.file_ids)
    harden_collaboration_websocket(MAX_UPDATE_BYTES)
    log.info("Code Pilot: real-time collaboration on, its state in %s", state.folder)


def without_collaboration(page_config: dict) -> dict:
    """JupyterLab's page config with the collaboration plugins left out and the core
    plugins they replace back."""
    page_config["federated_extensions"] = [
        extension
        for extension in page_config.get("federated_extensions", [])
        if extension.get("name") not in LAB_PACKAGES
    ]
    page_config["disabledExtensions"] = [
        name for name in page_config.get("disabledExtensions", []) if name not in REPLACED_PLUGINS
    ] + list(LAB_PACKAGES)
    page_config["disableRTC"] = True
    return page_config


def page_config_hook_without_collaboration(previous_hook):
    """A jupyterlab-server ``page_config_hook`` that runs ``previous_hook`` (JupyterHub's),
    then leaves the collaboration out."""

    def hook(handler, page_config):
        if previous_hook is not None:
            page_config = previous_hook(handler, page_config)
        return without_collaboration(page_config)

    return hook
