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


# JupyterHub 6 names a new server only with a "safe slug" (``jupyterhub.slugs``): 1 to 30
# lowercase ASCII letters, digits and single hyphens, from a letter to a letter or digit.
# Spelled out here so that each refusal says which rule; a test checks it agrees with
# JupyterHub's own ``is_valid_safe_slug``.
NAME_MAX_LENGTH = 30
_LOWER = set("abcdefghijklmnopqrstuvwxyz")
_DIGITS = set("0123456789")


def _slug_problem(name: str) -> str | None:
    if not name:
        return "Type a name for the project."
    if len(name) > NAME_MAX_LENGTH:
        return f"A project name has at most {NAME_MAX_LENGTH} characters ({len(name)} typed)."
    wrong = sorted({c for c in name if c not in _LOWER | _DIGITS | {"-"}})
    if wrong:
        shown = " ".join(repr(c) for c in wrong[:5])
        return f"Use lowercase letters a-z, digits and hyphens only (not {shown})."
    if name[0] not in _LOWER:
        return "A project name starts with a letter (a-z)."
    if name[-1] == "-":
        return "A project name ends with a letter or a digit, not a hyphen."
    if "--" in name:
        return "A project name has no two hyphens in a row."
    return None


def project_name_problem(name: str, existing: list[str] | set[str], limit: int) -> str | None:
    """Why ``name`` cannot name a new project (named server), or None when it can.

    The one source of the rules the hub applies: JupyterHub's name format, the names of a
    server's own routes (``RESERVED_NAMES``), the names the user already has and the
    hub's ``named_server_limit_per_user`` (``limit``; 0 is none). ``existing`` are the
    user's server names, ``""`` (the default project) included or not.
    """
    problem = _slug_problem(name) or reserved_name_reason(name)
    if problem:
        return problem
    named = {server for server in existing if server}
    if name in named:
        return f"You already have a project named {name!r}."
    if limit > 0 and len(named) >= limit:
        return f"You have {len(named)} projects, the most allowed: delete one to make another."
    return None
