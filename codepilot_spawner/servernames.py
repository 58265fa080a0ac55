"""Names a named server cannot take (``codepilot_contracts.servernames``), refused with a 400."""

from tornado import web

from codepilot_contracts.servernames import reserved_name_reason


def check_server_name(name: str) -> None:
    """Raise a 400 that explains why, when ``name`` collides with a server route."""
    reason = reserved_name_reason(name)
    if reason:
        raise web.HTTPError(400, reason)
