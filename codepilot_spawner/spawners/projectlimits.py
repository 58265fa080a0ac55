"""The limits the hub sets on a user's projects (named servers): the names it refuses
with a 400 (the rules are ``codepilot_contracts.servernames``), how many a user may have,
and what a server's token may do to them."""

from dataclasses import dataclass

from tornado import web

from codepilot_contracts.servernames import reserved_name_reason

# JupyterHub's ``server`` role (what a server's own token holds by default), and its
# owner's right to list, start, stop and delete their own servers: the project switcher
# in JupyterLab acts on the hub through the server (the IDE's origin is not the hub's).
# JupyterHub gives a server token only the part of these its user holds.
SERVER_TOKEN_SCOPES = (
    "users:activity!user",
    "access:servers!server",
    "read:servers!user",
    "servers!user",
)


def check_server_name(name: str) -> None:
    """Raise a 400 that explains why, when ``name`` collides with a server route."""
    reason = reserved_name_reason(name)
    if reason:
        raise web.HTTPError(400, reason)


@dataclass(frozen=True)
class ProjectLimit:
    """``c.JupyterHub.named_server_limit_per_user``: ``limit`` projects, and no slot for a
    reserved name.

    JupyterHub asks for the limit (a callable gets the request's handler) just before it
    records a new named server, and only then. The spawner refuses a reserved name when
    the server starts, but by then the hub has recorded it and it takes one of the
    user's slots until deleted; refused here, it is never recorded. The handlers that
    create servers (``POST``/``PUT api/users/<user>/servers/<name>``, ``spawn/<user>/<name>``)
    have the server's name as their second path argument.
    """

    limit: int

    def __call__(self, handler) -> int:
        path_args = getattr(handler, "path_args", None) or []
        if len(path_args) > 1 and isinstance(path_args[1], str):
            check_server_name(path_args[1])
        return self.limit


def project_limit_of(setting) -> int:
    """The number a ``named_server_limit_per_user`` setting stands for; 0 (none) for a
    callable other than ``ProjectLimit``, whose answer depends on the request."""
    if isinstance(setting, ProjectLimit):
        return setting.limit
    return setting if isinstance(setting, int) else 0
