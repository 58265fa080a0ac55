"""Code Pilot's jupyter-server extension.

Loaded in every user server: it points terminals at the workspace, serves the live
preview of the user's app and exposes the workspace settings as ``c.CodePilot.*``.
Importing the package stays cheap (``python -m server_extension.sync`` runs in init
containers and before every start); the app, and jupyter-server with it, load on use.
"""

__all__ = ["CodePilot"]


def __getattr__(name):
    if name == "CodePilot":
        from .app import CodePilot

        return CodePilot
    raise AttributeError(f"module 'server_extension' has no attribute {name!r}")


def _jupyter_server_extension_points():
    from .app import CodePilot

    return [{"module": "server_extension", "app": CodePilot}]
