"""The environment contract, hub -> user server: ``CODEPILOT_<NAME>`` variables.

Every configurable trait ``c.CodePilot.<name>`` of the user server can be set as
``CODEPILOT_<NAME>``; a spawner sets them because it cannot write config files into a
pod. The few variables below are not ``CodePilot`` traits but are read on both sides.
"""

ENV_PREFIX = "CODEPILOT_"

# When the S3 credentials a server started with expire (ISO 8601), beside ``AWS_*``.
CREDENTIALS_EXPIRATION = "CODEPILOT_S3_CREDENTIALS_EXPIRATION"
# A class's own starter folders on one machine (``<data dir>/templates``, the stored name).
STARTERS_DIR = "CODEPILOT_STARTERS_DIR"
# Every process of a server on one machine inherits it (how stopping finds them all, and
# how the server tells its own listening sockets from those of the machine).
PROCESS_TAG = "WORKSPACE_PROCESS_TAG"


def carries_process_tag(pid: int, tag: str, proc: str = "/proc") -> bool:
    """Whether process ``pid`` began with ``PROCESS_TAG=<tag>`` in its environment (False
    once it has ended, or when its environment is not this user's to read)."""
    try:
        with open(f"{proc}/{pid}/environ", "rb") as stream:
            return f"{PROCESS_TAG}={tag}".encode() in stream.read().split(b"\0")
    except OSError:
        return False


def env_name(trait_name: str) -> str:
    """The variable that sets a trait: ``preview_port`` -> ``CODEPILOT_PREVIEW_PORT``."""
    return ENV_PREFIX + trait_name.upper()


def env_value(value) -> str:
    """A setting as its variable's text: booleans ``true``/``false``, the rest ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def settings_environment(settings: dict) -> dict[str, str]:
    """``{"preview_port": 3000}`` -> ``{"CODEPILOT_PREVIEW_PORT": "3000"}``.

    Keys are ``c.CodePilot`` trait names; ``None`` values are left out so the trait
    keeps its default.
    """
    return {
        env_name(name): env_value(value) for name, value in settings.items() if value is not None
    }
