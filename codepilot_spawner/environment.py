"""Settings for a user server, as the ``CODEPILOT_*`` variables its extension reads."""

ENV_PREFIX = "CODEPILOT_"


def codepilot_environment(settings: dict) -> dict[str, str]:
    """``{"preview_port": 3000}`` -> ``{"CODEPILOT_PREVIEW_PORT": "3000"}``.

    Keys are ``c.CodePilot`` trait names; ``None`` values are left out so the trait
    keeps its default. Booleans become ``true``/``false``.
    """
    env = {}
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[ENV_PREFIX + name.upper()] = str(value)
    return env
