"""Who may see a preview: share levels and JupyterHub's ``access:servers`` scopes."""

SHARE_LEVELS = ("owner", "authenticated", "public")
DEFAULT_SHARE_LEVEL = "owner"
# What people read for each level, wherever a page of ours shows one (JupyterLab's
# Preview panel says the same, in @codepilot/lab's sharelevels.ts).
SHARE_WORDS = {
    "owner": "Only me",
    "authenticated": "Anyone in this class",
    "public": "Anyone with the link",
}


def grants_server_access(scopes, owner: str, server: str, owner_groups=()) -> bool:
    """Whether a viewer with ``scopes`` may open ``owner``'s server ``server``.

    The same rule as JupyterHub's own check of a user server, ``access:servers`` with its
    filters, including ``!group=``, which ``jupyterhub.services.auth.check_scopes``
    leaves unresolved (teachers get access to a group of students).
    """
    for scope in scopes:
        name, _, scope_filter = scope.partition("!")
        if name != "access:servers":
            continue
        if not scope_filter:
            return True
        kind, _, value = scope_filter.partition("=")
        if (
            (kind == "user" and value == owner)
            or (kind == "server" and value == f"{owner}/{server}")
            or (kind == "group" and value in owner_groups)
        ):
            return True
    return False
