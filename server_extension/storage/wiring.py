"""Choosing and configuring the contents manager for a storage mode (pure functions).

jupyter-server makes its contents manager before any extension loads, so Code Pilot
decides while extensions are linked: it sets ``ServerApp.contents_manager_class`` and
the manager's config section, and the server then builds the manager from them. The
workspace's ``WorkspaceLocation`` goes into that section whole.
"""

from .location import WorkspaceLocation

MODES = ("local", "sync", "s3")


def resolve_mode(storage: str | None, bucket: str) -> str:
    """The configured mode, or ``sync`` when a bucket is set and ``local`` otherwise."""
    mode = storage or ("sync" if bucket else "local")
    if mode in ("sync", "s3") and not bucket:
        raise ValueError(
            f"storage {mode!r} needs an S3 bucket: set CODEPILOT_S3_BUCKET (c.CodePilot.s3_bucket)"
        )
    return mode


def contents_manager_choice(
    mode: str, location: WorkspaceLocation | None, save_timeout: float = 10.0
) -> tuple[str, str, dict]:
    """(manager class as an import string, its config section, settings) for ``mode``;
    ``location`` is where the workspace lives in S3 (None in ``local`` mode)."""
    if mode == "local":
        return "server_extension.storage.contents.WorkspaceFileManager", "", {}
    if mode == "sync":
        return (
            "server_extension.storage.contents.SyncContentsManager",
            "SyncContentsManager",
            {"workspace_location": location, "sync_save_timeout": save_timeout},
        )
    if mode == "s3":
        from .s3mode import s3contents_config

        return (
            "s3contents.S3ContentsManager",
            "S3ContentsManager",
            s3contents_config(location),
        )
    raise ValueError(f"unknown storage mode {mode!r}; expected one of {', '.join(MODES)}")


def configure_contents_manager(serverapp, choice: tuple[str, str, dict], log) -> None:
    """Apply ``choice`` to a linked, not yet initialized ServerApp.

    Settings already in the manager's config section win, and a contents manager class
    set explicitly in config is kept in ``local`` mode.
    """
    class_name, section, settings = choice
    configured = serverapp.config.get("ServerApp", {}).get("contents_manager_class")
    if section == "" and configured is not None:
        log.info("Code Pilot: keeping the configured contents manager %s", configured)
        return
    if configured is not None and str(configured) != class_name:
        log.warning(
            "Code Pilot: storage mode replaces the configured contents manager %s with %s",
            configured,
            class_name,
        )
    serverapp.contents_manager_class = class_name
    if section:
        own = serverapp.config[section]
        for name, value in settings.items():
            if name not in own:
                own[name] = value
