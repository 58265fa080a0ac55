"""The class page: a hub service at ``/services/codepilot/`` for teachers and admins."""
