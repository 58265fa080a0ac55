"""Names a named server cannot take.

A named server lives at ``/user/<name>/<server>/``, beside the default server's own
routes under ``/user/<name>/``: a server called ``api`` would take over the default
server's ``/user/<name>/api/``, and its lab would break.
"""

from tornado import web

RESERVED_NAMES = frozenset(
    {
        "api",
        "codepilot",
        "custom",
        "doc",
        "edit",
        "files",
        "kernelspecs",
        "lab",
        "login",
        "logout",
        "lsp",
        "metrics",
        "nbconvert",
        "nbextensions",
        "notebooks",
        "oauth_callback",
        "preview",
        "proxy",
        "server-proxy",
        "static",
        "terminals",
        "tree",
        "view",
    }
)


def check_server_name(name: str) -> None:
    """Raise a 400 that explains why, when ``name`` collides with a server route."""
    if name.lower() in RESERVED_NAMES:
        raise web.HTTPError(
            400,
            f"A server cannot be named {name!r}: it is a path of your default server. "
            "Choose another name.",
        )
