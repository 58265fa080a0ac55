"""Hub-side parts of Code Pilot: spawners and the pure functions they are built from."""

from .local import CodePilotLocalSpawner

__all__ = ["CodePilotLocalSpawner"]
