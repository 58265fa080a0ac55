"""Settings for a user server, as the ``CODEPILOT_*`` variables its extension reads.

The naming rule is ``codepilot_contracts.env``; this old name stays only until the
spawners import it from there.
"""

from codepilot_contracts.env import settings_environment as codepilot_environment

__all__ = ["codepilot_environment"]
