"""Configurables whose settings can come from ``CODEPILOT_*`` environment variables.

A spawner configures a user server by environment (it cannot write config files into a
pod), so every configurable trait of ``CodePilot`` can be set as ``CODEPILOT_<NAME>``.
Precedence, highest first: config files and command line, the environment, the default.
"""

import os

from codepilot_contracts.env import env_name


def env_settings(traits: dict, environ=os.environ) -> dict:
    """Values for the traits whose variable is set, parsed as the command line would.

    A value the trait rejects raises ``ValueError`` naming the variable.
    """
    settings = {}
    for name, trait in traits.items():
        raw = environ.get(env_name(name))
        if raw is None:
            continue
        try:
            settings[name] = trait.validate(None, trait.from_string(raw))
        except Exception as error:
            raise ValueError(f"{env_name(name)}={raw!r} is not valid: {error}") from None
    return settings


class EnvDefaultsMixin:
    """Mixin for a ``Configurable``: its own config traits take values from the environment.

    Values are set when the object is made, before an ExtensionApp loads its config, so
    config files and the command line still win.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        section = self.config.get(type(self).__name__, {})
        own_traits = {
            name: trait
            for name, trait in self.class_own_traits(config=True).items()
            if name not in kwargs and name not in section
        }
        for name, value in env_settings(own_traits).items():
            setattr(self, name, value)
