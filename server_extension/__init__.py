"""Code Pilot's jupyter-server extension.

Loaded in every user server: it points terminals at the workspace, serves the live
preview of the user's app and exposes the workspace settings as ``c.CodePilot.*``.
"""

from .app import CodePilot

__all__ = ["CodePilot"]


def _jupyter_server_extension_points():
    return [{"module": "server_extension", "app": CodePilot}]
