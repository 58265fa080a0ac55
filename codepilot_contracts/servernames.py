"""Names a named server cannot take: the top-level routes of a user server.

A named server lives at ``/user/<name>/<server>/``, beside the default server's own
routes under ``/user/<name>/``: a server called ``api`` would take over the default
server's ``/user/<name>/api/``, and its lab would break. A test lists the routes of a
real user server and fails when one is missing here.
"""

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


def reserved_name_reason(name: str) -> str | None:
    """Why ``name`` cannot name a server, or None when it can."""
    if name.lower() in RESERVED_NAMES:
        return (
            f"A server cannot be named {name!r}: it is a path of your default server. "
            "Choose another name."
        )
    return None
